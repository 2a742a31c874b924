import { createHash } from 'node:crypto';
import { z } from 'zod';
import { redactPhoneNumber } from '../core/phone.js';
import { DEFAULT_CAMPAIGN_ID, callMetadataSchema, dispatchMetadataSchema, idSchema, type CallMetadata } from '../core/queues.js';
import { profileOverrideSchema } from './profiles.js';
import { errorMessage } from '../core/errors.js';

/**
 * Dispatch metadata as the agent reads it: the shared schema, plus an inline profile (an object in
 * `agent_profile`, or a separate `profile` field) for `lk dispatch create` users who have no profile file.
 */
const agentDispatchMetadataSchema = dispatchMetadataSchema.extend({
  agent_profile: z.union([z.string().min(1), profileOverrideSchema]).optional(),
  profile: profileOverrideSchema.optional(),
  call_id: idSchema.optional(),
  campaign_id: idSchema.optional(),
  metadata: callMetadataSchema.optional(),
});

/** How the callee gets into the room. */
export type CallDirection =
  /** Someone called in through a dispatch rule; the agent greets first. */
  | { kind: 'inbound' }
  /** The consumer dials; the agent waits for this SIP participant to join and answer. */
  | { kind: 'consumer_dialed'; phoneNumber: string; participantIdentity: string }
  /** Dispatched with only a phone number: the agent places the call itself. */
  | { kind: 'self_dial'; phoneNumber: string; participantIdentity: string };

/** What the agent knows about a call before it starts. */
export interface CallPlan {
  direction: CallDirection;
  /**
   * The id the outcome is reported under (jobId on `call-results`): the dispatch's `call_id`, else one derived from
   * the room name (inboundCallId for inbound calls, `<room>` for self-dialed ones), so a re-dispatch reports under the same id.
   */
  callId: string;
  campaignId: string;
  attempt: number | undefined;
  profileName: string | undefined;
  profileOverride: Record<string, unknown> | undefined;
  /** Values for `{{placeholders}}`: the caller's metadata plus `campaign_id`. */
  values: CallMetadata;
}

export class DispatchMetadataError extends Error {
  override readonly name = 'DispatchMetadataError';
  constructor(
    message: string,
    /** The call id, when the bad metadata still carried a usable one (so the failure can be reported). */
    readonly callId: string | undefined,
    readonly campaignId: string | undefined,
  ) {
    super(message);
  }
}

/** Campaign of inbound calls whose dispatch (or room) metadata names none. */
export const INBOUND_CAMPAIGN_ID = 'inbound';
const INBOUND_CALL_ID_PREFIX = 'in-';
const MAX_ID_LENGTH = 128;
/** Hex digits of the room name's SHA-256 in an inbound call id: 64 bits, no collision in any realistic call volume. */
const INBOUND_ID_HASH_HEX_CHARS = 16;

/** Room names become ids only through this: BullMQ job ids and Redis keys must not contain ':'. */
export function idFromRoomName(roomName: string, prefix = ''): string {
  const cleaned = roomName.replace(/[^A-Za-z0-9_.-]/g, '-');
  return `${prefix}${cleaned.length > 0 ? cleaned : 'room'}`.slice(0, MAX_ID_LENGTH);
}

/**
 * The call id of an inbound call: `in-` + the first 16 hex digits of the room name's SHA-256. LiveKit's individual
 * dispatch rule makes one room per call, named after the caller (`call-_<caller>_<suffix>`): the id must not carry
 * that number (it is a Redis key, a webhook header, a report column and in every log line), and is stable for every
 * dispatch into that room.
 */
export function inboundCallId(roomName: string): string {
  return `${INBOUND_CALL_ID_PREFIX}${createHash('sha256').update(roomName).digest('hex').slice(0, INBOUND_ID_HASH_HEX_CHARS)}`;
}

/**
 * For logs: the digits of phone-number-like runs (7+ digits) cut to their tail. Inbound room names carry the caller's
 * number, which never reaches a log in full.
 */
export function redactNumbersIn(text: string): string {
  return text.replace(/\+?\d{7,}/g, (run) => redactPhoneNumber(run));
}

function stringField(raw: unknown, key: string): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const value = (raw as Record<string, unknown>)[key];
  return typeof value === 'string' && idSchema.safeParse(value).success ? value : undefined;
}

/** `campaign_id` from the room's metadata (a dispatch rule's roomConfig), when it is JSON and carries a valid one. */
function campaignFromRoomMetadata(roomMetadata: string | undefined): string | undefined {
  if (!roomMetadata || roomMetadata.trim() === '') return undefined;
  try {
    return stringField(JSON.parse(roomMetadata), 'campaign_id');
  } catch {
    return undefined;
  }
}

/**
 * Reads a job's metadata. Metadata without `phone_number` (empty, or a dispatch rule's agent metadata) is an
 * inbound call, reported under inboundCallId(room) in the campaign its metadata (or else the room's) names, else `inbound`.
 * Metadata with only `phone_number` is an ad-hoc outbound dispatch the agent dials itself; its outcome is reported
 * under an id made from the room name.
 */
export function parseCallPlan(rawMetadata: string, roomName: string, roomMetadata?: string): CallPlan {
  let raw: unknown = {};
  if (rawMetadata.trim() !== '') {
    try {
      raw = JSON.parse(rawMetadata);
    } catch (err) {
      throw new DispatchMetadataError(`dispatch metadata is not JSON: ${errorMessage(err)}`, undefined, undefined);
    }
  }
  const parsed = agentDispatchMetadataSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
    throw new DispatchMetadataError(`invalid dispatch metadata: ${issues}`, stringField(raw, 'call_id'), stringField(raw, 'campaign_id'));
  }
  const meta = parsed.data;
  const phoneNumber = meta.phone_number?.trim();
  const campaignId = phoneNumber
    ? (meta.campaign_id ?? DEFAULT_CAMPAIGN_ID)
    : (meta.campaign_id ?? campaignFromRoomMetadata(roomMetadata) ?? INBOUND_CAMPAIGN_ID);
  const values: CallMetadata = { ...(meta.metadata ?? {}), campaign_id: campaignId };
  const inlineProfile = typeof meta.agent_profile === 'object' ? meta.agent_profile : undefined;
  const profileOverride = inlineProfile || meta.profile ? { ...(inlineProfile ?? {}), ...(meta.profile ?? {}) } : undefined;
  const common = {
    campaignId,
    attempt: meta.attempt,
    profileName: typeof meta.agent_profile === 'string' ? meta.agent_profile : undefined,
    profileOverride,
    values,
  };

  if (!phoneNumber) return { ...common, direction: { kind: 'inbound' }, callId: meta.call_id ?? inboundCallId(roomName) };

  if (meta.dialed_by === 'consumer') {
    if (!meta.call_id || !meta.sip_participant_identity) {
      throw new DispatchMetadataError(
        'dispatch metadata with dialed_by "consumer" needs call_id and sip_participant_identity',
        meta.call_id,
        meta.campaign_id,
      );
    }
    return {
      ...common,
      callId: meta.call_id,
      direction: { kind: 'consumer_dialed', phoneNumber, participantIdentity: meta.sip_participant_identity },
    };
  }
  const callId = meta.call_id ?? idFromRoomName(roomName);
  return {
    ...common,
    callId,
    direction: { kind: 'self_dial', phoneNumber, participantIdentity: meta.sip_participant_identity ?? `sip-${callId}` },
  };
}
