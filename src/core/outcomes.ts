import { z } from 'zod';
import { idSchema } from './queues.js';

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

/** Inbound calls are reported by the agent under `in-…` ids with no record made beforehand (src/agent/callPlan.ts). */
export const INBOUND_CALL_ID_PREFIX = 'in-';

// Size caps of a result. A result comes from our agent, our consumer, or any service that can write to Redis, and
// ends up in the call record for the retention period: everything in it is bounded. Free text is cut (with a marker)
// rather than refused, so an oversized result still ends its call; structured fields over their cap are refused.

/** A reason is one sentence for a person ("callee hung up", a SIP error's message); cut beyond this, in chars. */
export const MAX_REASON_CHARS = 1000;
/** The agent's summary is a few clauses (src/agent/outcomeTracker.ts); cut beyond this, in chars. */
export const MAX_SUMMARY_CHARS = 4000;
/** A SIP reason phrase ("Busy Here"); cut beyond this, in chars. */
export const MAX_SIP_STATUS_CHARS = 256;
/** Twice the agent's own per-line cap (2,000 chars, src/agent/outcomeTracker.ts), so its lines pass untouched; in chars. */
export const MAX_TRANSCRIPT_LINE_CHARS = 4000;
/** More than the agent keeps (200 lines plus its own "N more lines not kept" line); later lines are dropped. */
export const MAX_TRANSCRIPT_LINES = 500;
/** Transcript text kept per call, in UTF-8 bytes (a 10-minute conversation is about 10–20 KB); later lines are dropped. */
export const MAX_TRANSCRIPT_BYTES = 512 * 1024;
/** Survey answers per call: a profile asks a handful of questions; more is refused (it is not a survey). */
export const MAX_SURVEY_ANSWERS = 100;
/** A survey question or answer (the agent cuts answers at 1,000 chars); cut beyond this, in chars. */
export const MAX_SURVEY_TEXT_CHARS = 2000;
/** A transfer target (`tel:+…` or `sip:…@…`); longer is refused. */
export const MAX_TRANSFER_TARGET_CHARS = 512;
/** An inbound caller's number as SIP gives it (E.164, or a SIP user such as `anonymous`); longer is refused. */
export const MAX_PHONE_NUMBER_CHARS = 64;

/** What a cut text ends with, so a reader sees it was cut. */
const CUT_MARKER = '…';

/** The first `maxChars` UTF-16 units of `text`, without splitting a surrogate pair. */
function headOf(text: string, maxChars: number): string {
  const head = text.slice(0, maxChars);
  const last = head.charCodeAt(head.length - 1);
  const HIGH_SURROGATE_MIN = 0xd800;
  const HIGH_SURROGATE_MAX = 0xdbff;
  return last >= HIGH_SURROGATE_MIN && last <= HIGH_SURROGATE_MAX ? head.slice(0, -1) : head;
}

/**
 * `text` cut to at most `maxChars` with a visible marker (`… [cut from N chars]`); unchanged when it fits, so capping
 * twice (reporter, then results worker) gives the same text.
 */
export function capText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const marker = `${CUT_MARKER} [cut from ${text.length} chars]`;
  return `${headOf(text, Math.max(0, maxChars - marker.length))}${marker}`;
}

/** A free-text field: any string, cut to `maxChars` (see capText). */
const cappedText = (maxChars: number) => z.string().transform((text) => capText(text, maxChars));

export const transferSchema = z.object({
  mode: z.enum(['cold', 'warm']),
  target: z.string().min(1).max(MAX_TRANSFER_TARGET_CHARS),
});

export const surveyAnswerSchema = z.object({
  question: cappedText(MAX_SURVEY_TEXT_CHARS),
  answer: cappedText(MAX_SURVEY_TEXT_CHARS),
});

export const transcriptLineSchema = z.object({
  role: z.enum(['agent', 'callee', 'system']),
  text: z.string(),
});
type Line = z.infer<typeof transcriptLineSchema>;

/** Room kept for the marker line within MAX_TRANSCRIPT_BYTES, so a capped transcript fits its caps. */
const TRANSCRIPT_MARKER_RESERVE_BYTES = 128;

/**
 * Caps a transcript. One that fits (at most MAX_TRANSCRIPT_LINES lines, each at most MAX_TRANSCRIPT_LINE_CHARS, at
 * most MAX_TRANSCRIPT_BYTES of UTF-8 text) is returned unchanged. Otherwise long lines are cut (ending in `…`), the
 * lines are kept in order while they fit, the rest dropped, and a last `system` line says so:
 * `[transcript truncated: N lines / M bytes dropped]` (M counts the bytes of lines cut short too). The result fits the
 * caps, marker included, so capping twice changes nothing.
 */
export function capTranscript(lines: readonly Line[]): Line[] {
  const fits =
    lines.length <= MAX_TRANSCRIPT_LINES &&
    lines.every((line) => line.text.length <= MAX_TRANSCRIPT_LINE_CHARS) &&
    lines.reduce((sum, line) => sum + Buffer.byteLength(line.text), 0) <= MAX_TRANSCRIPT_BYTES;
  if (fits) return lines.map((line) => ({ role: line.role, text: line.text }));

  const kept: Line[] = [];
  let keptBytes = 0;
  let droppedLines = 0;
  let droppedBytes = 0;
  for (const line of lines) {
    const fullBytes = Buffer.byteLength(line.text);
    if (droppedLines > 0 || kept.length >= MAX_TRANSCRIPT_LINES - 1) {
      droppedLines += 1;
      droppedBytes += fullBytes;
      continue;
    }
    const cut = line.text.length > MAX_TRANSCRIPT_LINE_CHARS;
    const head = cut ? headOf(line.text, MAX_TRANSCRIPT_LINE_CHARS - CUT_MARKER.length) : line.text;
    const text = cut ? `${head}${CUT_MARKER}` : line.text;
    const bytes = cut ? Buffer.byteLength(text) : fullBytes;
    if (keptBytes + bytes > MAX_TRANSCRIPT_BYTES - TRANSCRIPT_MARKER_RESERVE_BYTES) {
      droppedLines += 1;
      droppedBytes += fullBytes;
      continue;
    }
    if (cut) droppedBytes += fullBytes - Buffer.byteLength(head);
    keptBytes += bytes;
    kept.push({ role: line.role, text });
  }
  kept.push({ role: 'system', text: `[transcript truncated: ${droppedLines} lines / ${droppedBytes} bytes dropped]` });
  return kept;
}

/** Who may report a terminal outcome; `watchdog` is the results service ending a connected call nobody reported. */
export const REPORTERS = ['consumer', 'agent', 'producer', 'operator', 'watchdog'] as const;
export type Reporter = (typeof REPORTERS)[number];

/**
 * The one terminal report of a call, as carried on the `call-results` queue (jobId = callId). Ids are checked like
 * every id that becomes part of a Redis key; free text is cut to the caps above, a transcript with a marker line.
 */
export const callResultSchema = z.object({
  callId: idSchema,
  campaignId: idSchema,
  outcome: outcomeSchema,
  reason: cappedText(MAX_REASON_CHARS).optional(),
  reportedBy: z.enum(REPORTERS),
  /** The number outside LiveKit, for calls the dialer did not enqueue (an inbound caller); the record keeps it. */
  phoneNumber: z.string().max(MAX_PHONE_NUMBER_CHARS).optional(),
  attempt: z.number().int().nonnegative().optional(),
  sipStatusCode: z.number().int().optional(),
  sipStatus: cappedText(MAX_SIP_STATUS_CHARS).optional(),
  durationMs: z.number().nonnegative().optional(),
  transfer: transferSchema.optional(),
  surveyAnswers: z.array(surveyAnswerSchema).max(MAX_SURVEY_ANSWERS).optional(),
  summary: cappedText(MAX_SUMMARY_CHARS).optional(),
  transcript: z.array(transcriptLineSchema).transform(capTranscript).optional(),
  endedAt: z.number().int().positive(),
});
export type CallResult = z.infer<typeof callResultSchema>;
export type TranscriptLine = z.infer<typeof transcriptLineSchema>;
export type SurveyAnswer = z.infer<typeof surveyAnswerSchema>;

/** Where a result may end a call from: record states, or `missing` (no record yet: the result creates it). */
export type RecordPresence = CallState | 'missing';

/** The states from which a result may end its call; any other is an impossible transition and is refused. */
export interface TerminalTransition {
  /** States the record may be in. */
  from: readonly RecordPresence[];
  /** States allowed only when the result's attempt is the record's latest attempt (the one whose room the agent was in). */
  fromAtLatestAttempt: readonly CallState[];
  /**
   * States allowed only while the record's latest attempt is not marked sent (claimDial.lua has not let its
   * CreateSIPParticipant go): the consumer's claim then finds the call ended and dials nothing.
   */
  fromBeforeDialSent?: readonly CallState[];
  /**
   * The result may not end an attempt the consumer hung up for want of an agent (CallStore.endAttemptWithoutAgent,
   * written before the room was deleted), whatever state the record is in: the consumer's decision stands, so an agent
   * that joined just as it hung up cannot end the call `answered` over the attempt's `failed`.
   */
  notForAttemptsWithoutAgent?: boolean;
}

/** What applying a terminal outcome did: see CallStore.applyTransition. */
export type TerminalApplied =
  | { status: 'applied' }
  | { status: 'already_ended' }
  /** `noAgentAttempt`: refused because the consumer had hung the result's attempt up for want of an agent. */
  | { status: 'refused'; state: RecordPresence; noAgentAttempt?: boolean };

/**
 * Who may end a call from which state: the record's state machine, enforced by applyTerminal's Lua.
 * - agent: once dialing started (`dialing`, `in_call`); `waiting_retry` only for the latest attempt (the consumer
 *   put the call back after a dial error while the callee in fact answered: refusing would ring them again);
 *   no record only for inbound `in-…` ids; never for an attempt the consumer hung up because no agent had joined
 *   (`notForAttemptsWithoutAgent`).
 * - consumer: before the phone is answered (`queued`, `dialing`, `waiting_retry`): dial failures, and gates (skipped,
 *   expired) ending calls still queued. It always creates the record before it reports.
 * - operator / producer: calls not yet ringing (`queued`, `waiting_retry`, and `dialing` while the attempt's dial is
 *   not marked sent: a consumer waiting for its CPS slot), as `cancel` does.
 * - watchdog: a connected call whose agent never reported (`in_call`).
 * Results for any other state (an agent outcome for a call still queued) or for unknown ids are refused.
 */
export function terminalTransition(result: Pick<CallResult, 'reportedBy' | 'callId'>): TerminalTransition {
  switch (result.reportedBy) {
    case 'agent':
      return {
        from: result.callId.startsWith(INBOUND_CALL_ID_PREFIX) ? ['dialing', 'in_call', 'missing'] : ['dialing', 'in_call'],
        fromAtLatestAttempt: ['waiting_retry'],
        notForAttemptsWithoutAgent: true,
      };
    case 'consumer':
      return { from: ['queued', 'dialing', 'waiting_retry'], fromAtLatestAttempt: [] };
    case 'operator':
    case 'producer':
      return { from: ['queued', 'waiting_retry'], fromAtLatestAttempt: [], fromBeforeDialSent: ['dialing'] };
    case 'watchdog':
      return { from: ['in_call'], fromAtLatestAttempt: [] };
  }
}
