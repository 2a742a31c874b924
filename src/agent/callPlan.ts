import { z } from 'zod';
import { DEFAULT_CAMPAIGN_ID, callMetadataSchema, dispatchMetadataSchema, idSchema, type CallMetadata } from '../core/queues.js';
import { profileOverrideSchema } from './profiles.js';

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
  /** Absent for inbound calls and ad-hoc dispatches: such calls have no record in the dialer to report to. */
  callId: string | undefined;
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

/** Room names become ids only through this: BullMQ job ids and Redis keys must not contain ':'. */
export function idFromRoomName(roomName: string): string {
  const cleaned = roomName.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 128);
  return cleaned.length > 0 ? cleaned : 'room';
}

function stringField(raw: unknown, key: string): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const value = (raw as Record<string, unknown>)[key];
  return typeof value === 'string' && idSchema.safeParse(value).success ? value : undefined;
}

/**
 * Reads a job's metadata. Empty metadata is an inbound call. Metadata with only `phone_number` is an ad-hoc
 * outbound dispatch the agent dials itself; its outcome is reported under an id made from the room name.
 */
export function parseCallPlan(rawMetadata: string, roomName: string): CallPlan {
  let raw: unknown = {};
  if (rawMetadata.trim() !== '') {
    try {
      raw = JSON.parse(rawMetadata);
    } catch (err) {
      throw new DispatchMetadataError(`dispatch metadata is not JSON: ${(err as Error).message}`, undefined, undefined);
    }
  }
  const parsed = agentDispatchMetadataSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
    throw new DispatchMetadataError(`invalid dispatch metadata: ${issues}`, stringField(raw, 'call_id'), stringField(raw, 'campaign_id'));
  }
  const meta = parsed.data;
  const campaignId = meta.campaign_id ?? DEFAULT_CAMPAIGN_ID;
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

  const phoneNumber = meta.phone_number?.trim();
  if (!phoneNumber) return { ...common, direction: { kind: 'inbound' }, callId: meta.call_id };

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
