import type { CountryCode } from 'libphonenumber-js';
import { z } from 'zod';
import { callWindowSchema } from '../core/callWindow.js';
import { InvalidInputError } from '../core/errors.js';
import { parsePushedNumber, type PhoneNumber } from '../core/phone.js';
import { DEFAULT_CAMPAIGN_ID, callJobSchema, callMetadataSchema, idSchema, type CallJob } from '../core/queues.js';

/**
 * What other services may push onto `calls` directly with BullMQ: our own payload, or the guide's snake_case
 * (`phone_number`, `campaign_id`, `metadata` …). Missing ids default to the job id and the default campaign.
 */
const pushedJobSchema = z.object({
  callId: idSchema.optional(),
  call_id: idSchema.optional(),
  campaignId: idSchema.optional(),
  campaign_id: idSchema.optional(),
  phoneNumber: z.string().optional(),
  phone_number: z.string().optional(),
  metadata: callMetadataSchema.optional(),
  agentProfile: z.string().min(1).optional(),
  agent_profile: z.string().min(1).optional(),
  enqueuedAt: z.number().int().positive().optional(),
  expiresAt: z.number().int().positive().optional(),
  callWindow: callWindowSchema.optional(),
  call_window: callWindowSchema.optional(),
  /** Extension digits dialed as DTMF after the answer (validated by callJobSchema); may also be written into the number. */
  extension: z.string().optional(),
});

export type ParsedCallJob = { ok: true; call: CallJob } | { ok: false; reason: string; callId?: string; campaignId?: string };

/**
 * BullMQ refuses integer custom job ids, and the call id becomes the job id on `call-results`; a pushed job's
 * auto-generated id ("17") therefore becomes "job-17".
 */
function asCallId(id: string): string | undefined {
  const valid = idSchema.safeParse(/^\d+$/.test(id) ? `job-${id}` : id);
  return valid.success ? valid.data : undefined;
}

/**
 * The call id and campaign of a job whose payload is otherwise malformed (a number sent as an integer, metadata as a
 * string …), when they are themselves valid: the call can then still be recorded and end with a `failed` outcome
 * instead of vanishing.
 */
function salvageIds(data: unknown, jobId: string | undefined): { callId?: string; campaignId?: string } {
  const fields = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const given = text(fields.callId) ?? text(fields.call_id) ?? jobId;
  const callId = given === undefined ? undefined : asCallId(given);
  const campaign = idSchema.safeParse(text(fields.campaignId) ?? text(fields.campaign_id) ?? DEFAULT_CAMPAIGN_ID);
  return callId && campaign.success ? { callId, campaignId: campaign.data } : {};
}

const describeIssues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.') || 'data'}: ${i.message}`).join('; ');

/** Validates a job taken from `calls` (the consumer's edge: other services write there too). */
export function parseCallJob(data: unknown, jobId: string | undefined, jobTimestamp: number, defaultRegion?: CountryCode): ParsedCallJob {
  const pushed = pushedJobSchema.safeParse(data);
  if (!pushed.success) return { ok: false, reason: `malformed call job: ${describeIssues(pushed.error)}`, ...salvageIds(data, jobId) };
  const d = pushed.data;
  const given = d.callId ?? d.call_id ?? jobId;
  const callId = given === undefined ? undefined : asCallId(given);
  const campaignId = d.campaignId ?? d.campaign_id ?? DEFAULT_CAMPAIGN_ID;
  const raw = d.phoneNumber ?? d.phone_number;
  if (!raw) return { ok: false, reason: 'malformed call job: phoneNumber: missing', callId, campaignId };
  // an extension written into the number (`;ext=136`, `x136`, `#136`) is split off as enqueue and import do
  let number: PhoneNumber;
  try {
    number = parsePushedNumber(raw, d.extension, defaultRegion);
  } catch (err) {
    if (!(err instanceof InvalidInputError)) throw err;
    return { ok: false, reason: `malformed call job: phoneNumber: ${err.message}`, callId, campaignId };
  }
  const call = callJobSchema.safeParse({
    callId,
    campaignId,
    phoneNumber: number.e164,
    metadata: d.metadata ?? {},
    agentProfile: d.agentProfile ?? d.agent_profile,
    enqueuedAt: d.enqueuedAt ?? jobTimestamp,
    expiresAt: d.expiresAt,
    callWindow: d.callWindow ?? d.call_window,
    extension: number.extension,
  });
  if (!call.success) return { ok: false, reason: `malformed call job: ${describeIssues(call.error)}`, callId, campaignId };
  return { ok: true, call: call.data };
}
