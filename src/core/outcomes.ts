import { z } from 'zod';

/**
 * Every call ends in exactly one of these. Connected outcomes are written by the agent,
 * never-connected ones by the consumer, queue-side ones (skipped/expired/canceled) by whoever stops the call.
 */
export const OUTCOMES = [
  'answered',
  'voicemail',
  'transferred',
  'no_answer',
  'busy',
  'declined',
  'invalid_number',
  'failed',
  'skipped',
  'expired',
  'canceled',
] as const;

export const outcomeSchema = z.enum(OUTCOMES);
export type Outcome = z.infer<typeof outcomeSchema>;

/** Outcomes where a person or machine picked up (pick-up rate counts `answered` and `transferred`, not voicemail). */
export const CONNECTED_OUTCOMES: readonly Outcome[] = ['answered', 'voicemail', 'transferred'];
/** A person picked up: the numerator of the pick-up rate. */
export const PERSON_OUTCOMES: readonly Outcome[] = ['answered', 'transferred'];
/** Ended without the phone ringing (queue-side): left out of the pick-up rate's dialed calls. */
export const NOT_DIALED_OUTCOMES: readonly Outcome[] = ['skipped', 'expired', 'canceled'];

/** A call's state in its record: `queued → dialing → in_call → terminal`, with `waiting_retry` between attempts. */
export const CALL_STATES = ['queued', 'dialing', 'waiting_retry', 'in_call', 'terminal'] as const;
export type CallState = (typeof CALL_STATES)[number];

export const transferSchema = z.object({
  mode: z.enum(['cold', 'warm']),
  target: z.string().min(1),
});

export const surveyAnswerSchema = z.object({
  question: z.string(),
  answer: z.string(),
});

export const transcriptLineSchema = z.object({
  role: z.enum(['agent', 'callee', 'system']),
  text: z.string(),
});

/** The one terminal report of a call, as carried on the `call-results` queue (jobId = callId). */
export const callResultSchema = z.object({
  callId: z.string().min(1),
  campaignId: z.string().min(1),
  outcome: outcomeSchema,
  reason: z.string().optional(),
  reportedBy: z.enum(['consumer', 'agent', 'producer', 'operator']),
  /** The number outside LiveKit, for calls the dialer did not enqueue (an inbound caller); the record keeps it. */
  phoneNumber: z.string().optional(),
  attempt: z.number().int().nonnegative().optional(),
  sipStatusCode: z.number().int().optional(),
  sipStatus: z.string().optional(),
  durationMs: z.number().nonnegative().optional(),
  transfer: transferSchema.optional(),
  surveyAnswers: z.array(surveyAnswerSchema).optional(),
  summary: z.string().optional(),
  transcript: z.array(transcriptLineSchema).optional(),
  endedAt: z.number().int().positive(),
});
export type CallResult = z.infer<typeof callResultSchema>;
export type TranscriptLine = z.infer<typeof transcriptLineSchema>;
export type SurveyAnswer = z.infer<typeof surveyAnswerSchema>;
