import { z } from 'zod';
import { callWindowSchema } from './callWindow.js';

/** Queue names are part of the outside contract: other services push to and read from them. */
export const CALLS_QUEUE = 'calls';
export const CALL_RESULTS_QUEUE = 'call-results';

/** Longest campaign or call id. */
export const MAX_ID_LENGTH = 128;
/** What a campaign or call id is made of. */
export const ID_PATTERN = /^[A-Za-z0-9_.-]+$/;

/** Campaign and call ids end up inside Redis keys and BullMQ job ids, which must not contain ':'. */
export const idSchema = z
  .string()
  .min(1)
  .max(MAX_ID_LENGTH)
  .regex(ID_PATTERN, 'only letters, digits, "_", "." and "-" are allowed');

export const DEFAULT_CAMPAIGN_ID = 'default';

/**
 * Largest call metadata, as JSON bytes. It travels inside the agent dispatch's metadata, which LiveKit refuses when
 * too large (a 5 MB one was refused with HTTP 413), and is stored in every call record: a call carrying more is
 * refused where it enters (enqueue, import, or the consumer for jobs pushed straight onto the queue).
 */
export const MAX_CALL_METADATA_BYTES = 16 * 1024;

/** Values a producer may attach to a call; they fill `{{placeholders}}` in the agent's instructions. */
export const callMetadataSchema = z
  .record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))
  .refine((metadata) => Buffer.byteLength(JSON.stringify(metadata)) <= MAX_CALL_METADATA_BYTES, {
    message: `metadata must be at most ${MAX_CALL_METADATA_BYTES / 1024} KiB as JSON`,
  });
export type CallMetadata = z.infer<typeof callMetadataSchema>;

/** Payload of a job on the `calls` queue; validated by the consumer because other services write it too. */
export const callJobSchema = z.object({
  callId: idSchema,
  campaignId: idSchema,
  phoneNumber: z.string().regex(/^\+[1-9]\d{6,14}$/, 'phoneNumber must be E.164'),
  /** Extension digits, sent as DTMF after the answer (CreateSIPParticipant `dtmf`, see extensionDtmf in core/phone). */
  extension: z.string().regex(/^\d{1,15}$/, 'extension must be 1 to 15 digits').optional(),
  metadata: callMetadataSchema.default({}),
  /** Name of an agent profile (instructions, voice, voicemail message …) the agent should use. */
  agentProfile: z.string().optional(),
  enqueuedAt: z.number().int().positive(),
  /** Epoch ms after which an undialed call expires instead of ringing late. */
  expiresAt: z.number().int().positive().optional(),
  /** Local hours (and weekdays) the call may ring in the callee's time zone; DIAL_CALL_WINDOW when absent. */
  callWindow: callWindowSchema.optional(),
});
export type CallJob = z.infer<typeof callJobSchema>;

/** Dispatch metadata the agent reads (JSON in the agent job's metadata). */
export const dispatchMetadataSchema = z.object({
  phone_number: z.string().optional(),
  call_id: z.string().optional(),
  campaign_id: z.string().optional(),
  attempt: z.number().int().positive().optional(),
  /** Present when the consumer places the SIP call; absent when the agent must dial itself. */
  dialed_by: z.literal('consumer').optional(),
  sip_participant_identity: z.string().optional(),
  agent_profile: z.string().optional(),
  metadata: callMetadataSchema.optional(),
});
export type DispatchMetadata = z.infer<typeof dispatchMetadataSchema>;
