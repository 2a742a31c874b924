import { ServerError } from 'livekit-server-sdk';
import type { Logger } from '../core/logger.js';
import type { AttemptEntry, CallRecord, CallStore, DialStartWindow } from '../core/callStore.js';
import { prepareDial, type LiveKitClients } from '../core/livekitClients.js';
import { RequestNotSentError, withSendGate } from '../core/twirpTransport.js';
import type { CallJob, DispatchMetadata } from '../core/queues.js';
import { extensionDtmf } from '../core/phone.js';
import { errorMessage } from '../core/errors.js';
import { SECOND, sleep, type Clock } from '../core/time.js';
import { RING_OUT_TOLERANCE_MS, classifyDispatchError, classifySipError, describeLiveKitError } from '../core/classifySipError.js';
import { endFromObservation, fromDialFailure, fromDispatchFailure, type AttemptEnd } from './attemptEnd.js';
import type { CampaignDialRate, DialRateLimiter } from './dialRateLimiter.js';
import type { PlatformBackoff } from './platformBackoff.js';
import { followPreviousAttempt, inspectPreviousAttempt } from './previousAttempt.js';
import type { RetryableOutcome } from './retryPolicy.js';

/** Grace after the ringing timeout before a call left by a crashed consumer counts as unanswered. */
export const PREVIOUS_ATTEMPT_GRACE_MS = 5 * SECOND;
/**
 * After a taken-over attempt's SIP participant is gone, how long to wait for the agent's note of how it left
 * (the agent writes it when the room tells it, which can come a moment after LiveKit stops listing the participant).
 */
export const OBSERVATION_GRACE_MS = 2 * SECOND;
const OBSERVATION_POLL_MS = 200;
/** A platform back-off met right before dialing is waited out this many times before the job gives its slot back. */
export const MAX_BACKOFF_WAITS = 3;
/**
 * A call whose timer fires later than this after its CPS slot does not claim it; it takes a new slot. A late claim
 * takes window room that the call one window later needs, which then waits (by the lateness less the pacing slack,
 * PACING_SLACK_MS, and less again for the next window): it costs latency, not rate. A missed slot costs a whole
 * interval of the limit (100 ms at 10 CPS) and sends the call to the back of the queue. Up to this lateness the
 * latency is the cheaper price (the dispatch-to-dial delay stays within DISPATCH_LEAD_MS + this); beyond it, the call
 * gives way.
 */
export const LATE_SLOT_MAX_MS = 100;
/** Missed slots of one call before the job is put back to wait (not spent): this process is badly overloaded. */
export const MAX_LATE_SLOTS = 10;
/** A call taking a new slot this much further than DISPATCH_LEAD_MS away has its agent dispatched again, later. */
export const REDISPATCH_AFTER_MS = 100;
/** Claims tried for one start (a full window or a stale claim tries again) before the job gives its slot back. */
export const MAX_CLAIM_TRIES = 50;
/**
 * The agent's dispatch is made this long before the call's CPS slot: long enough for its round trip on a loaded host,
 * short enough that the agent waits little in the room before the phone rings (issue 13: p99 ≤ 250 ms).
 */
export const DISPATCH_LEAD_MS = 100;


export interface DialDeps {
  livekit: LiveKitClients;
  store: CallStore;
  limiter: DialRateLimiter;
  backoff: PlatformBackoff;
  trunkId: string;
  agentName: string;
  ringingTimeoutS: number;
  clock: Clock;
  logger: Logger;
  /** The call's campaign's own rate, when it has one: claimDial holds it at the start together with DIAL_CPS. */
  campaignRate?: CampaignDialRate;
  /**
   * Epoch ms past which the call is not started (its campaign's end or its own expiry, whichever comes first): its
   * gates passed before, but the wait for a CPS slot can carry it past. Checked in the claim, at Redis' time.
   */
  notAfterMs?: number;
}

/** What makes this process the one that may dial: the job's BullMQ lock, and signals that end its claim to it. */
export interface DialOwnership {
  /** The dial job's lock key and this holder's token; claimDial checks them atomically right before dialing. */
  lock: { key: string; token: string };
  /** Aborted when the consumer drains: a call still waiting for its CPS slot goes back to the queue. */
  draining?: AbortSignal;
  /** Aborted by BullMQ when it could not renew the job's lock: another consumer may own the job now. */
  lockLost?: AbortSignal;
}

/**
 * What the consumer around a dial attempt is told as it goes, to record why its call waits (src/core/heldCalls.ts):
 * `onCpsWait` when the call's CPS slot is at least CPS_HOLD_RECORD_MS away, `onDialing` once its request is on its way.
 * Both are called without being awaited on the dial's path (the write to LiveKit never waits for them); each
 * handles its own errors.
 */
export interface DialAttemptHooks {
  onCpsWait(waitMs: number): void;
  onDialing(): void;
}

/** A call whose CPS slot is this far away or more is recorded as held for `cps` (shorter waits are the normal pace). */
export const CPS_HOLD_RECORD_MS = SECOND;

/**
 * Set on an answer or a failure when the run settled an earlier attempt than its own, one a failed run left open (see
 * dialAttempt): the end is that attempt's and is written for it; the run's own number still counts against the call's
 * attempts, since BullMQ spent it.
 */
export type SettledAttempt = number;

/** How one dial attempt ended. */
export type DialAttemptResult =
  | { status: 'answered'; room: string; participantIdentity: string; recovered: boolean; settledAttempt?: SettledAttempt }
  | { status: 'already_ended' }
  /**
   * Stopped before its dial: the consumer is draining, or (`pastEnd`) the call's campaign ended or the call expired
   * while it waited for its CPS slot. Nothing rang, the attempt is not spent; the gates decide at the next run.
   */
  | { status: 'not_started'; room: string; pastEnd?: boolean }
  /**
   * The job's lock lapsed and another consumer may hold it, or the record moved on under this run: this process must
   * not dial nor touch the room. If it still holds the job after all (a lock renewal that failed for a moment), the
   * job goes back to wait and a fresh run decides.
   */
  | { status: 'lost_ownership' }
  /**
   * LiveKit could not be asked about an attempt that may already ring (a takeover, or a dial request whose answer was
   * lost): nothing was dialed and the record stays as it is, so the next try follows the attempt again.
   */
  | { status: 'unreachable'; reason: string }
  | { status: 'failed'; room: string; end: AttemptEnd; settledAttempt?: SettledAttempt };

/** placeCall's own answer when its CreateSIPParticipant got no reply: dialAttempt follows the call in LiveKit. */
type PlaceCallResult = DialAttemptResult | { status: 'no_reply'; reason: string };

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

async function deleteDispatchQuietly(deps: DialDeps, dispatchId: string, room: string, log: Logger): Promise<void> {
  try {
    await deps.livekit.dispatch.deleteDispatch(dispatchId, room);
  } catch (err) {
    log.warn({ err, room }, 'could not delete the agent dispatch this consumer made');
  }
}

/** Deletes the attempt's room; false (logged) when LiveKit could not be asked. */
async function deleteRoomIfPossible(deps: DialDeps, room: string, log: Logger): Promise<boolean> {
  try {
    await deps.livekit.rooms.deleteRoom(room);
    return true;
  } catch (err) {
    log.warn({ err, room }, 'could not delete the attempt room before dispatching its agent again; the dispatch stays');
    return false;
  }
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
 * True when a failed request may still have reached LiveKit: no HTTP answer came back (connection reset, timeout),
 * so the call may have been placed. An answer with an HTTP status (a ServerError) means LiveKit refused it.
 */
function mayHaveReachedLiveKit(err: unknown): boolean {
  return !(err instanceof ServerError);
}

/** Waits briefly for the agent's note of how the attempt's SIP participant left its room. */
async function awaitObservation(store: CallStore, job: CallJob, attempt: number, clock: Clock): Promise<CallRecord['attemptObserved']> {
  const until = clock.now() + OBSERVATION_GRACE_MS;
  for (;;) {
    const observed = (await store.get(job.campaignId, job.callId))?.attemptObserved;
    if (observed?.attempt === attempt) return observed;
    if (clock.now() >= until) return undefined;
    await sleep(OBSERVATION_POLL_MS);
  }
}

/**
 * An attempt whose CreateSIPParticipant may have gone out (marked by claimDial) but whose dialer stopped: ask LiveKit
 * and follow it, never dial it again. Ringing: follow until answered, gone, or past its ringing timeout. Active:
 * answered. Gone: the phone may have rung and ended while nobody listened, so the attempt is spent; the agent's note
 * says how it ended (see endFromObservation), else it is retried after the normal delay.
 */
async function followSentAttempt(job: CallJob, attempt: number, record: CallRecord, deps: DialDeps, log: Logger): Promise<DialAttemptResult> {
  const room = record.room ?? roomName(job.callId, attempt);
  const identity = sipIdentity(job.callId);
  /** Set when this consumer watched the call ring until it went away at its ringing timeout. */
  let rangOutWhileFollowed = false;
  try {
    const state = await inspectPreviousAttempt(deps.livekit.rooms, room, identity);
    log.warn({ room, state }, 'attempt was dialed by a consumer that stopped; following it instead of dialing again');
    if (state === 'active') return { status: 'answered', room, participantIdentity: identity, recovered: true };
    if (state === 'ringing') {
      const sentAt = record.dialSentAt ?? record.attemptStartedAt ?? deps.clock.now();
      const deadline = sentAt + deps.ringingTimeoutS * SECOND + PREVIOUS_ATTEMPT_GRACE_MS;
      const followed = await followPreviousAttempt(deps.livekit.rooms, room, identity, deadline, deps.clock);
      if (followed === 'active') return { status: 'answered', room, participantIdentity: identity, recovered: true };
      if (followed === 'timed_out') {
        await deleteRoomQuietly(deps, room, log); // stops a phone still ringing past its timeout
        return { status: 'failed', room, end: { kind: 'retry', outcome: 'no_answer', reason: 'rang past the ringing timeout' } };
      }
      // LiveKit ends a ring-out at the ringing timeout (and keeps no SIP status): gone then means it rang out
      rangOutWhileFollowed = deps.clock.now() >= sentAt + deps.ringingTimeoutS * SECOND - RING_OUT_TOLERANCE_MS;
    }
  } catch (err) {
    return { status: 'unreachable', reason: `could not ask LiveKit about room ${room}: ${describeLiveKitError(err)}` };
  }
  const observed = await awaitObservation(deps.store, job, attempt, deps.clock);
  if (observed?.lastCallStatus === 'active') {
    // answered and already over: the agent held the conversation and reports it
    return { status: 'answered', room, participantIdentity: identity, recovered: true };
  }
  await deleteRoomQuietly(deps, room, log); // its dispatch may still wait there
  // What the agent saw decides (a decline near the timeout stays a decline); without it, a ring-out this consumer
  // watched to its end is a no-answer rather than an unknown end.
  const end: AttemptEnd =
    observed === undefined && rangOutWhileFollowed
      ? { kind: 'retry', outcome: 'no_answer', reason: 'rang out while this consumer followed it (LiveKit keeps no SIP status)' }
      : endFromObservation(observed);
  log.warn({ room, observed: observed?.disconnectReason ?? 'nothing' }, 'attempt ended while no consumer followed it; counted as spent');
  return { status: 'failed', room, end };
}

/** The attempt's entry in the record's log, if it ended with a result a re-run must honour (not a platform error). */
function endedEntry(record: CallRecord, attempt: number): AttemptEntry | undefined {
  const entry = record.attemptLog.findLast((e) => e.attempt === attempt);
  if (!entry || entry.endedAt === undefined || entry.result === undefined) return undefined;
  return entry.result === 'platform_error' || entry.result === 'not_started' ? undefined : entry;
}

const RETRYABLE: readonly string[] = ['busy', 'no_answer', 'failed'] satisfies RetryableOutcome[];
const FINAL: readonly string[] = ['declined', 'invalid_number', 'failed'];

/** A logged attempt result as the attempt's end again, so a re-run applies it instead of dialing. */
function replayEnd(entry: AttemptEntry): AttemptEnd {
  const sip = { sipStatusCode: entry.sipStatusCode, sipStatus: entry.sipStatus, reason: entry.reason };
  const outcome = entry.result ?? 'failed';
  if (entry.kind === 'final' && FINAL.includes(outcome)) return { kind: 'final', outcome: outcome as 'declined' | 'invalid_number' | 'failed', ...sip };
  return { kind: 'retry', outcome: RETRYABLE.includes(outcome) ? (outcome as RetryableOutcome) : 'failed', ...sip };
}

/**
 * A re-run of an attempt the record already knows (its consumer stopped, or BullMQ lost the job's own bookkeeping):
 * - the attempt's result was logged: it is applied again (retry later, or end the call), never dialed again;
 * - it was marked sent, or the agent saw its callee leave: it is followed (followSentAttempt);
 * - it began but is not marked sent: Redis may have lost the mark with the last second of its AOF, so LiveKit is asked
 *   first; a call still there is followed, else the attempt is dialed.
 * Undefined: dial it.
 */
async function resumeAttempt(job: CallJob, attempt: number, record: CallRecord, deps: DialDeps, log: Logger): Promise<DialAttemptResult | undefined> {
  const room = record.room ?? roomName(job.callId, attempt);
  const ended = endedEntry(record, attempt);
  if (ended) {
    log.warn({ room, result: ended.result }, 'attempt already ended before this run; applying its result instead of dialing');
    if (ended.result === 'answered') return { status: 'answered', room, participantIdentity: sipIdentity(job.callId), recovered: true };
    return { status: 'failed', room, end: replayEnd(ended) };
  }
  if (record.state !== 'dialing') return undefined;
  if (record.dialSentAttempt === attempt || record.attemptObserved?.attempt === attempt) return followSentAttempt(job, attempt, record, deps, log);
  let seen: Awaited<ReturnType<typeof inspectPreviousAttempt>>;
  try {
    seen = await inspectPreviousAttempt(deps.livekit.rooms, room, sipIdentity(job.callId));
  } catch (err) {
    return { status: 'unreachable', reason: `could not ask LiveKit about room ${room}: ${describeLiveKitError(err)}` };
  }
  if (seen !== 'absent') return followSentAttempt(job, attempt, record, deps, log);
  log.warn({ room }, 'attempt was started but not dialed by a consumer that stopped; dialing it now');
  // Its agent dispatch may still wait in the room: a fresh room, so one agent serves the call.
  await deleteRoomQuietly(deps, room, log);
  return undefined;
}

/**
 * One dial attempt. Resumes an attempt a stopped consumer left (following it when it may already ring), or records
 * the attempt, reserves a CPS slot, dispatches the agent into a fresh room just before the slot, claims the dial at the
 * slot (claimDial: lock still held, no platform back-off, not dialed before, room in the rolling CPS window) and rings
 * the number at once, waiting for the answer. A failed attempt's
 * room is deleted so no agent is left waiting; a process that lost the job never touches the room.
 */
export async function dialAttempt(
  job: CallJob,
  attempt: number,
  deps: DialDeps,
  log: Logger,
  ownership: DialOwnership,
  hooks?: DialAttemptHooks,
): Promise<DialAttemptResult> {
  const room = roomName(job.callId, attempt);
  const record = await deps.store.get(job.campaignId, job.callId);
  if (record?.state === 'terminal' || record?.state === 'in_call') return { status: 'already_ended' };
  if (record && record.attempts === attempt) {
    const resumed = await resumeAttempt(job, attempt, record, deps, log);
    if (resumed) return resumed;
  }
  if (record && record.state === 'dialing' && record.attempts > 0 && record.attempts < attempt) {
    // An earlier run failed after its dial and before the attempt's end settled the call (an error from Redis, say):
    // BullMQ counted that run as an attempt, but the record still shows the earlier attempt open, or ended final
    // without its outcome reported. It is settled first, as a takeover would (followed in LiveKit, or its logged
    // result applied); dialing the next one at once could ring a callee who declined, or who is talking to the agent.
    const open = record.attempts;
    const resumed = await resumeAttempt(job, open, record, deps, log.child({ openAttempt: open }));
    if (resumed?.status === 'answered' || resumed?.status === 'failed') return { ...resumed, settledAttempt: open };
    if (resumed) return resumed;
  }
  const before = await deps.store.beginAttempt(job, attempt, room);
  if (before === 'terminal') return { status: 'already_ended' };
  const placed = await placeCall(job, attempt, room, deps, log, ownership, hooks);
  if (placed.status !== 'no_reply') return placed;
  log.warn({ room, reason: placed.reason }, 'no reply from LiveKit to the dial; following the call there instead');
  const now = await deps.store.get(job.campaignId, job.callId);
  if (!now || now.state === 'terminal' || now.state === 'in_call') return { status: 'already_ended' };
  return followSentAttempt(job, attempt, now, deps, log);
}

async function placeCall(
  job: CallJob,
  attempt: number,
  room: string,
  deps: DialDeps,
  log: Logger,
  ownership: DialOwnership,
  hooks: DialAttemptHooks | undefined,
): Promise<PlaceCallResult> {
  const signals = [ownership.draining, ownership.lockLost].filter((s): s is AbortSignal => s !== undefined);
  const stop = signals.length > 0 ? AbortSignal.any(signals) : undefined;
  const identity = sipIdentity(job.callId);
  let dispatchId: string | undefined;
  let owned = true;
  let answered = false;
  let noReply = false;
  let startedAt = deps.clock.now();
  /** When this attempt's slot came, its dispatch was done and its claims were asked (debug log, bench:cps --trace). */
  const timing = { slotDue: 0, dispatched: 0, firstAsk: 0, askedAt: 0, tries: 0, writtenAt: 0 };

  /** Waits `ms`; false when stopped meanwhile (draining, or the lock lost). */
  const pause = async (ms: number): Promise<boolean> => {
    try {
      await sleep(ms, stop);
      return true;
    } catch {
      return false;
    }
  };
  const stopped = (): PlaceCallResult => {
    if (!ownership.lockLost?.aborted) return { status: 'not_started', room };
    owned = false;
    return { status: 'lost_ownership' };
  };

  /** What to do when a claim did not come back `ok`: a result for the caller, or `new_slot` (a back-off was waited out). */
  const notClaimed = async (claim: Exclude<ClaimOutcome, ClaimedStart>): Promise<PlaceCallResult | 'new_slot'> => {
    if (claim === 'backoff') return 'new_slot';
    if (claim === 'stopped') return stopped();
    if (claim === 'past_end') {
      log.info({ room, notAfterMs: deps.notAfterMs }, 'the campaign ended or the call expired while it waited for its dial slot; not dialing');
      return { status: 'not_started', room, pastEnd: true };
    }
    owned = false;
    if (claim === 'not_dialing') {
      const now = await deps.store.get(job.campaignId, job.callId);
      if (now?.state === 'terminal' || now?.state === 'in_call') return { status: 'already_ended' };
    }
    log.warn({ room, claim }, 'this consumer no longer owns the call; not dialing');
    return { status: 'lost_ownership' };
  };

  try {
    let claimed: ClaimedStart | undefined;
    let backoffs = 0;
    let lateSlots = 0;
    while (claimed === undefined) {
      const { waitMs } = await deps.limiter.reserve();
      const slotDue = performance.now() + waitMs;
      if (deps.notAfterMs !== undefined && deps.clock.now() + waitMs > deps.notAfterMs) {
        // its slot comes after its campaign's end or its expiry: no agent is dispatched for it (the claim would refuse)
        log.info({ room, notAfterMs: deps.notAfterMs, waitMs: Math.round(waitMs) }, 'the dial slot comes after the campaign end or the call expiry; not dialing');
        return { status: 'not_started', room, pastEnd: true };
      }
      if (waitMs >= CPS_HOLD_RECORD_MS) hooks?.onCpsWait(waitMs);
      timing.slotDue = performance.timeOrigin + slotDue;
      if (dispatchId !== undefined && waitMs > DISPATCH_LEAD_MS + REDISPATCH_AFTER_MS && lateSlots > 0) {
        // A missed slot's dispatch would leave its agent waiting in the room until this slot: the room goes (the agent
        // with it) and the agent is dispatched again before this slot. If the room cannot be deleted the dispatch stays
        // (a second dispatch beside it would send two agents).
        // Only while this process still holds the job: a lapsed lock may mean another consumer dispatched there since.
        if ((await deps.store.holdsLock(ownership.lock)) && (await deleteRoomIfPossible(deps, room, log))) dispatchId = undefined;
      }
      // The agent is dispatched DISPATCH_LEAD_MS before the call's slot comes: it does not wait in an empty room while
      // the call queues, and its round trip is over (and the connection to LiveKit warm) when the start is claimed.
      if (waitMs > DISPATCH_LEAD_MS && !(await pause(waitMs - DISPATCH_LEAD_MS))) return stopped();
      if (dispatchId === undefined) {
        try {
          const dispatch = await deps.livekit.dispatch.createDispatch(room, deps.agentName, { metadata: JSON.stringify(dispatchMetadata(job, attempt)) });
          dispatchId = dispatch.id;
        } catch (err) {
          return { status: 'failed', room, end: fromDispatchFailure(classifyDispatchError(err)) };
        }
      }
      await prepareDial(deps.livekit.sip); // token signed and a connection open now, not between the claim and the write
      timing.dispatched = performance.timeOrigin + performance.now();
      const untilSlot = slotDue - performance.now();
      if (untilSlot > 0 && !(await pause(untilSlot))) return stopped();
      const lateMs = performance.now() - slotDue;
      if (lateMs > LATE_SLOT_MAX_MS) {
        // This process woke too late (a loaded host): claimed now, its start would take room in the rolling window
        // from calls whose slots come on time, in this process or another. It takes a new slot instead.
        log.info({ lateMs: Math.round(lateMs), maxMs: LATE_SLOT_MAX_MS }, 'woke too late for its dial slot; taking a new one');
        lateSlots += 1;
        if (lateSlots > MAX_LATE_SLOTS) return stopped();
        continue;
      }
      const claim = await claimStart(job, attempt, deps, ownership.lock, { pause, stop }, log, timing);
      if (typeof claim === 'object') claimed = claim;
      else {
        const next = await notClaimed(claim);
        if (next !== 'new_slot') return next;
        // a platform back-off ran: it was waited out, the call takes a new slot (its dispatch stays: deleting it while
        // LiveKit fails could leave it there and dispatch a second agent into the room)
        backoffs += 1;
        if (backoffs > MAX_BACKOFF_WAITS) return stopped();
      }
    }
    for (let resends = 0; ; resends += 1) {
      const { askedAt, window } = claimed;
      // The send gate runs right before the request is written to its socket (twirpTransport.ts): a dial whose claim
      // is older than CLAIM_TO_SEND_MAX_MS by then (this process stalled on the way) is not written at all.
      const gate = (): string | undefined => {
        const ageMs = performance.now() - askedAt;
        if (ageMs <= window.marginMs) {
          timing.writtenAt = performance.timeOrigin + performance.now();
          return undefined;
        }
        return `the dial's start was counted ${Math.round(ageMs)} ms before it could be written (at most ${window.marginMs})`;
      };
      startedAt = deps.clock.now();
      try {
        const request = withSendGate(gate, () =>
          deps.livekit.sip.createSipParticipant(deps.trunkId, job.phoneNumber, room, {
            participantIdentity: identity,
            participantName: 'Callee',
            waitUntilAnswered: true,
            ringingTimeout: deps.ringingTimeoutS,
            participantAttributes: { 'dialer.callId': job.callId, 'dialer.campaignId': job.campaignId },
            // an extension is pressed once the far end answers (LiveKit sends `dtmf` after the answer; 'w' = 0.5 s pause)
            ...(job.extension ? { dtmf: extensionDtmf(job.extension) } : {}),
          }),
        );
        hooks?.onDialing(); // after the request is under way: nothing between the claim and the write
        await request;
        answered = true;
        return { status: 'answered', room, participantIdentity: identity, recovered: false };
      } catch (err) {
        if (!(err instanceof RequestNotSentError)) throw err;
        timing.writtenAt = 0;
        // Nothing was written: the claim is taken back (sent mark and window entry) and the start claimed afresh.
        log.info({ reason: err.message }, 'dial not sent: its start was counted too long ago; claiming again');
        const released = await deps.store.releaseDial(job.campaignId, job.callId, attempt, ownership.lock);
        await deps.limiter.giveBack(window);
        if (!released) {
          owned = false;
          return { status: 'lost_ownership' };
        }
        if (resends >= MAX_CLAIM_TRIES) return stopped();
        const again = await claimStart(job, attempt, deps, ownership.lock, { pause, stop }, log, timing);
        if (typeof again === 'object') claimed = again;
        else {
          const next = await notClaimed(again);
          // after a back-off the attempt gives its slot back: the job is put back to wait (not spent)
          return next === 'new_slot' ? stopped() : next;
        }
      }
    }
  } catch (err) {
    if (mayHaveReachedLiveKit(err)) {
      // No answer came back (the SDK's timeout, a reset connection): the request may have reached LiveKit, which keeps
      // ringing whatever happens to its caller. The attempt stays marked sent and is followed in LiveKit like one a
      // stopped consumer left, never dialed again; the room stays for the follow to judge.
      noReply = true;
      return { status: 'no_reply', reason: describeLiveKitError(err) };
    }
    const failure = classifySipError(err, { elapsedMs: deps.clock.now() - startedAt, ringingTimeoutMs: deps.ringingTimeoutS * SECOND });
    // LiveKit refused the request: nothing rang, and this attempt may be dialed again after the back-off
    if (failure.kind === 'platform') await deps.store.releaseDial(job.campaignId, job.callId, attempt, ownership.lock);
    return { status: 'failed', room, end: fromDialFailure(failure) };
  } finally {
    if (timing.writtenAt > 0 && log.isLevelEnabled('debug')) log.debug({ room, ...timing }, 'dial request written');
    // Registered before dialing: whatever went wrong, the callee and the dispatched agent are not left in the room.
    // A consumer that lost the job removes only its own dispatch: the room is the new holder's.
    // "Owned" is checked against the lock itself at this moment: a lock that lapsed unnoticed (a stall) may be another
    // consumer's by now, with its agent dispatched into this room (seen in the chaos test: the room deleted 0.1 s after
    // the new holder's dispatch, the callee answered into a room without an agent).
    if (!answered && !noReply && dispatchId !== undefined) {
      const holds =
        owned &&
        (await deps.store.holdsLock(ownership.lock).catch((err: unknown) => {
          log.warn({ room, err: errorMessage(err) }, 'could not read the job lock; removing only this dispatch, not the room');
          return false;
        }));
      if (holds) await deleteRoomQuietly(deps, room, log);
      else await deleteDispatchQuietly(deps, dispatchId, room, log);
    }
  }
}

/**
 * A claim that came back stale means this process or Redis is slow right now (a loaded host): claiming again at once,
 * every waiting call of every process would multiply the round trips that made it slow. The n-th stale claim of a
 * call waits a random time up to STALE_CLAIM_PAUSE_MS × 2^(n−1) (at most STALE_CLAIM_PAUSE_MAX_MS) first.
 */
export const STALE_CLAIM_PAUSE_MS = 20;
const STALE_CLAIM_PAUSE_MAX_MS = 120;

function staleClaimPauseMs(stale: number): number {
  return Math.random() * Math.min(STALE_CLAIM_PAUSE_MS * 2 ** (stale - 1), STALE_CLAIM_PAUSE_MAX_MS);
}

/** A claimed start: when its claim was asked (performance.now()) and the window it was counted in. */
interface ClaimedStart {
  askedAt: number;
  window: DialStartWindow;
}
type ClaimOutcome = ClaimedStart | 'backoff' | 'stopped' | 'lost' | 'not_dialing' | 'past_end';

/**
 * Claims the call's start (claimDial.lua), waiting while the rolling CPS window is full or a platform back-off runs.
 * The window counts the start at Redis' time during the claim; a claim whose reply took longer than
 * CLAIM_TO_SEND_MAX_MS (this process or Redis stalled) is stale: sent now, it could reach LiveKit among starts counted
 * up to a second later. Its sent mark and its window entry are taken back (nothing went out) and it claims again.
 * While the window is full, a few calls of the process (DialRateLimiter.windowTurn) wait for its room and ask again;
 * the others queue for a turn and ask when one is through, instead of all asking at the same moment.
 * Returns the claimed start (dial now), `backoff` (a back-off was waited out: take a new slot), `stopped`, `lost` or
 * `not_dialing`.
 */
async function claimStart(
  job: CallJob,
  attempt: number,
  deps: DialDeps,
  lock: DialOwnership['lock'],
  waits: { pause: (ms: number) => Promise<boolean>; stop: AbortSignal | undefined },
  log: Logger,
  timing: { askedAt: number; firstAsk: number; tries: number },
): Promise<ClaimOutcome> {
  const { pause } = waits;
  const turn = deps.limiter.windowTurn;
  /** True while this call holds the process's turn to wait for room in the window (WindowTurn). */
  let holdsTurn = false;
  const giveUpTurn = (): void => {
    if (holdsTurn) turn.release();
    holdsTurn = false;
  };
  let stale = 0;
  try {
    for (let tries = 0; tries < MAX_CLAIM_TRIES; tries += 1) {
      // other calls of this process wait for room in the window: it is full for this call too, which waits its turn
      if (!holdsTurn && turn.taken) {
        if ((await turn.take(waits.stop)) === 'stopped') return 'stopped';
        holdsTurn = true;
      }
      const window = deps.limiter.startWindow(deps.campaignRate);
      if (timing.firstAsk === 0) timing.firstAsk = performance.timeOrigin + performance.now();
      let asked = 0;
      // through this process's claims in flight (MAX_CLAIMS_IN_FLIGHT); the claim's age counts from when it is asked
      const claim = await deps.limiter.claims.run(() => {
        asked = performance.now();
        timing.askedAt = performance.timeOrigin + asked;
        timing.tries += 1;
        return deps.store.claimDial(job.campaignId, job.callId, attempt, lock, deps.backoff.key, window, deps.notAfterMs);
      });
      switch (claim.status) {
        case 'ok': {
          const tookMs = performance.now() - asked;
          if (tookMs <= window.marginMs) return { askedAt: asked, window };
          giveUpTurn(); // its window entry is given back below: the next waiting call may take the room
          log.info({ tookMs: Math.round(tookMs), maxMs: window.marginMs }, 'dial claim came back too late to send; claiming again');
          const released = await deps.store.releaseDial(job.campaignId, job.callId, attempt, lock);
          await deps.limiter.giveBack(window); // not sent, by this holder or by anyone for this claim
          if (!released) return 'lost';
          stale += 1;
          if (!(await pause(staleClaimPauseMs(stale)))) return 'stopped';
          continue;
        }
        case 'window_full':
          // the first of this process's calls to meet the full window wait for its room; the others queue for a turn
          if (!holdsTurn) {
            const taken = await turn.take(waits.stop);
            if (taken === 'stopped') return 'stopped';
            holdsTurn = true;
            if (taken === 'after_wait') continue; // a call before it was through: it asks at once
          }
          if (!(await pause(claim.waitMs))) return 'stopped';
          continue;
        case 'campaign_full':
          giveUpTurn(); // the global window had room: the process's other calls need not wait behind this campaign
          if (!(await pause(claim.waitMs))) return 'stopped';
          continue;
        case 'backoff':
          giveUpTurn();
          return (await pause(claim.waitMs)) ? 'backoff' : 'stopped';
        case 'lost_lock':
        case 'already_sent':
          return 'lost';
        case 'not_dialing':
          return 'not_dialing';
        case 'past_end':
          return 'past_end';
      }
    }
    return 'stopped';
  } finally {
    giveUpTurn();
  }
}
