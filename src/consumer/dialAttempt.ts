import type { Logger } from '../core/logger.js';
import type { CallStore } from '../core/callStore.js';
import type { LiveKitClients } from '../core/livekitClients.js';
import type { CallJob, DispatchMetadata } from '../core/queues.js';
import { SECOND, type Clock } from '../core/time.js';
import { classifySipError, type DialFailure } from '../core/classifySipError.js';
import type { DialRateLimiter } from './dialRateLimiter.js';
import { followPreviousAttempt, inspectPreviousAttempt } from './previousAttempt.js';

/** Grace after the ringing timeout before a call left by a crashed consumer counts as unanswered. */
export const PREVIOUS_ATTEMPT_GRACE_MS = 5 * SECOND;

export interface DialDeps {
  livekit: LiveKitClients;
  store: CallStore;
  limiter: DialRateLimiter;
  trunkId: string;
  agentName: string;
  ringingTimeoutS: number;
  clock: Clock;
  logger: Logger;
}

/** How one dial attempt ended. */
export type DialAttemptResult =
  | { status: 'answered'; room: string; participantIdentity: string; recovered: boolean }
  | { status: 'already_ended' }
  /** Stopped while waiting for a CPS slot (the consumer is draining): nothing rang, the attempt is not spent. */
  | { status: 'not_started'; room: string }
  | { status: 'failed'; room: string; failure: DialFailure };

/** Room of attempt `attempt`: unique per attempt so a retry never meets the previous attempt's agent. */
export function roomName(callId: string, attempt: number): string {
  return `call-${callId}-${attempt}`;
}

/** Identity of the callee's SIP participant, which the agent waits for. */
export function sipIdentity(callId: string): string {
  return `sip-${callId}`;
}

/** Metadata of the agent dispatch: the guide's `phone_number` plus what the agent needs to report. */
export function dispatchMetadata(job: CallJob, attempt: number): DispatchMetadata {
  return {
    phone_number: job.phoneNumber,
    call_id: job.callId,
    campaign_id: job.campaignId,
    attempt,
    dialed_by: 'consumer',
    sip_participant_identity: sipIdentity(job.callId),
    agent_profile: job.agentProfile,
    metadata: job.metadata,
  };
}

async function deleteRoomQuietly(deps: DialDeps, room: string, log: Logger): Promise<void> {
  try {
    await deps.livekit.rooms.deleteRoom(room);
  } catch (err) {
    // the room may never have been created; anything else is worth a warning but must not hide the dial result
    log.warn({ err, room }, 'could not delete the attempt room');
  }
}

/**
 * If a crashed consumer already started this attempt, asks LiveKit about it instead of ringing the phone again.
 * Returns undefined when a fresh dial is needed.
 */
async function resumeCrashedAttempt(
  job: CallJob,
  attempt: number,
  room: string,
  deps: DialDeps,
  log: Logger,
): Promise<DialAttemptResult | undefined> {
  const record = await deps.store.get(job.campaignId, job.callId);
  if (!record) return undefined;
  if (record.state === 'terminal' || record.state === 'in_call') return { status: 'already_ended' };
  if (record.state !== 'dialing' || record.attempts !== attempt || record.room !== room) return undefined;

  const identity = sipIdentity(job.callId);
  const state = await inspectPreviousAttempt(deps.livekit.rooms, room, identity);
  log.warn({ room, state }, 'attempt was started by a consumer that stopped; checked LiveKit before dialing again');
  if (state === 'absent') {
    await deleteRoomQuietly(deps, room, log); // its dispatch may still wait there
    return undefined;
  }
  const deadline = (record.attemptStartedAt ?? deps.clock.now()) + deps.ringingTimeoutS * SECOND + PREVIOUS_ATTEMPT_GRACE_MS;
  const followed = state === 'active' ? 'active' : await followPreviousAttempt(deps.livekit.rooms, room, identity, deadline, deps.clock);
  if (followed === 'active') return { status: 'answered', room, participantIdentity: identity, recovered: true };
  await deleteRoomQuietly(deps, room, log);
  return {
    status: 'failed',
    room,
    failure: { kind: 'retry', outcome: 'no_answer' },
  };
}

/**
 * One dial attempt: record it, dispatch the agent into a fresh room, take a CPS slot, ring the number and wait
 * for the answer. On any failure the attempt's room is deleted so no agent is left waiting.
 */
export async function dialAttempt(
  job: CallJob,
  attempt: number,
  deps: DialDeps,
  log: Logger,
  signals: { draining?: AbortSignal } = {},
): Promise<DialAttemptResult> {
  const room = roomName(job.callId, attempt);
  const resumed = await resumeCrashedAttempt(job, attempt, room, deps, log);
  if (resumed) return resumed;

  const before = await deps.store.beginAttempt(job, attempt, room);
  if (before === 'terminal') return { status: 'already_ended' };

  const identity = sipIdentity(job.callId);
  let answered = false;
  let startedAt = deps.clock.now();
  try {
    await deps.livekit.dispatch.createDispatch(room, deps.agentName, { metadata: JSON.stringify(dispatchMetadata(job, attempt)) });
    try {
      await deps.limiter.acquire(signals.draining);
    } catch (err) {
      if (signals.draining?.aborted) return { status: 'not_started', room };
      throw err;
    }
    startedAt = deps.clock.now();
    await deps.livekit.sip.createSipParticipant(deps.trunkId, job.phoneNumber, room, {
      participantIdentity: identity,
      participantName: 'Callee',
      waitUntilAnswered: true,
      ringingTimeout: deps.ringingTimeoutS,
      participantAttributes: { 'dialer.callId': job.callId, 'dialer.campaignId': job.campaignId },
    });
    answered = true;
    return { status: 'answered', room, participantIdentity: identity, recovered: false };
  } catch (err) {
    const failure = classifySipError(err, { elapsedMs: deps.clock.now() - startedAt, ringingTimeoutMs: deps.ringingTimeoutS * SECOND });
    return { status: 'failed', room, failure };
  } finally {
    // registered before dialing: whatever went wrong, the callee and the dispatched agent are not left in the room
    if (!answered) await deleteRoomQuietly(deps, room, log);
  }
}
