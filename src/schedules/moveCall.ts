/**
 * Moving a scheduled call to another time before it rings (issue 12 §4): `dialer move`, `POST /v1/calls/{id}/move`.
 *
 * A call enqueued with `--at`/`--delay` (or a reminder list's `at` column) waits as a delayed job in BullMQ's `calls`
 * queue (job id = call id). Moving it changes that job's delay with BullMQ's changeDelay, one Lua script that takes the
 * job out of the delayed set and puts it back at the new time only if it is still there: a call that a consumer took
 * meanwhile is never moved (nor dialed twice). A call that is ringing, connected, ended, or already due (waiting for a
 * dial slot, no longer delayed) is not moved; the answer says why. A call waiting for a retry may be moved too: its
 * next attempt comes at the new time. The dial gates still apply when it comes up (window, pause, caps).
 *
 * A call is named by its id or by the idempotency key it was enqueued with in its campaign (`--key`, a CSV key column,
 * the API's `key` field): `dialer move --key` and `POST /v1/campaigns/{id}/calls/move` both go through moveCallTo, so
 * the key is read as the producer keyed the call (keyedCallId) and the new time with the bounds `enqueue --at` has.
 */
import { campaignCallsQueue } from '../core/callQueues.js';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore } from '../core/callStore.js';
import { InvalidInputError } from '../core/errors.js';
import type { CallState, Outcome } from '../core/outcomes.js';
import { type CallJob } from '../core/queues.js';
import { MAX_SCHEDULE_AHEAD_MS, resolveSchedule, SCHEDULE_FLAGS, type Clock, type ScheduleInput, type ScheduleNames } from '../core/time.js';
import { campaignEndTimes } from '../campaigns/campaignRegion.js';
import { keyedCallId } from '../producer/callIds.js';

/** A call to move: by its id, or by the idempotency key it was enqueued with; either way within `campaignId`. */
export type MoveTarget = { campaignId: string; callId: string } | { campaignId: string; key: string };

/** The call id a target names: its own, or the one the producer gave its key in its campaign. */
export function moveTargetCallId(target: MoveTarget): string {
  return 'callId' in target ? target.callId : keyedCallId(target.campaignId, target.key);
}

/** What moving a call came to. `at`: epoch ms it will come up at (now, for a call moved to now). */
export type MoveResult =
  | { status: 'moved'; callId: string; campaignId: string; at: number }
  /** `key`: the key the call was asked for by, when it was. */
  | { status: 'not_found'; callId: string; campaignId: string; key?: string }
  | { status: 'not_movable'; callId: string; campaignId: string; state: CallState | Outcome | 'due'; why: string };

/** BullMQ's changeDelay answers -3 when the job is not in the delayed set any more (changeDelay-4.lua). */
const NOT_DELAYED = /not in the delayed state/i;
/** BullMQ's changeDelay answers -1 when the job's key is gone (removed by a cancel or a purge meanwhile). */
const JOB_GONE = /Missing key for job/i;

/**
 * Moves the call `target` names to come up at `atMs` (epoch ms; a time not in the future means now). Throws
 * InvalidInputError for a time past the 90-day bound or past the call's own expiry, naming the time as `names.at`
 * (the caller's own name for it: `--at` on the command line, `at` in the API).
 */
export async function moveCall(
  redis: RedisClient,
  prefix: string,
  clock: Clock,
  target: MoveTarget,
  atMs: number,
  names: Pick<ScheduleNames, 'at'> = SCHEDULE_FLAGS,
): Promise<MoveResult> {
  const { campaignId } = target;
  const callId = moveTargetCallId(target);
  const now = clock.now();
  if (atMs > now + MAX_SCHEDULE_AHEAD_MS) throw new InvalidInputError(`${names.at}: the new time is more than 90 days ahead`);
  const store = new CallStore(redis, prefix, clock);
  const record = await store.get(campaignId, callId);
  if (!record) return 'key' in target ? { status: 'not_found', callId, campaignId, key: target.key } : { status: 'not_found', callId, campaignId };
  const refuse = (state: CallState | Outcome | 'due', why: string): MoveResult => ({ status: 'not_movable', callId, campaignId, state, why });
  if (record.state === 'terminal') return refuse(record.outcome ?? 'terminal', `it already ended as ${record.outcome ?? 'terminal'}`);
  if (record.state === 'dialing' || record.state === 'in_call') return refuse(record.state, `it is ${record.state === 'dialing' ? 'ringing' : 'connected'}`);

  const queue = campaignCallsQueue<CallJob>(redis, prefix, campaignId);
  try {
    const job = await queue.getJob(callId);
    if (!job) return refuse(record.state, 'its dial job is gone (it was purged or never added)');
    const expiresAt = job.data.expiresAt;
    if (expiresAt !== undefined && atMs > expiresAt) {
      throw new InvalidInputError(`${names.at}: the new time is after the call expires (${new Date(expiresAt).toISOString()})`);
    }
    const endsAt = (await campaignEndTimes(redis, prefix, [campaignId])).get(campaignId);
    if (endsAt !== undefined && atMs > endsAt) {
      throw new InvalidInputError(`${names.at}: the new time is after campaign ${campaignId} ends (${new Date(endsAt).toISOString()})`);
    }
    // its job removed since it was read: a cancel (or a purge) ended the call meanwhile
    const gone = async (): Promise<MoveResult> => {
      const now = await store.get(campaignId, callId);
      const ended = now?.state === 'terminal' ? (now.outcome ?? 'terminal') : undefined;
      return ended ? refuse(ended, `it already ended as ${ended}`) : refuse(now?.state ?? record.state, 'its dial job is gone (it was purged or canceled meanwhile)');
    };
    const state = await job.getState();
    if (state === 'unknown') return gone();
    if (state !== 'delayed') return refuse('due', state === 'active' ? 'a consumer is dialing it now' : 'it is due now and waits for a dial slot, not for a time');
    try {
      if (atMs <= now) await job.promote();
      // BullMQ counts the delay from its own Date.now() (changeDelayArgs), not from this move's clock reading
      else await job.changeDelay(Math.max(1, atMs - Date.now()));
    } catch (err) {
      // taken by a consumer (or promoted) between the two steps: it was not moved, and rings as it would have
      if (err instanceof Error && NOT_DELAYED.test(err.message)) return refuse('due', 'it came up while being moved');
      if (err instanceof Error && JOB_GONE.test(err.message)) return gone();
      throw err;
    }
    return { status: 'moved', callId, campaignId, at: Math.max(atMs, now) };
  } finally {
    await queue.close();
  }
}

/**
 * Moves the call `target` names to the time `when` gives (`at`, or `delay` from now), read with the bounds
 * `enqueue --at` has (core/time.ts resolveSchedule: an `at` up to 5 minutes past, or a delay of 0, means now). Offset-less
 * times are local to `timeZone`. InvalidInputError messages name the inputs as `names` say (the edge's own names).
 */
export async function moveCallTo(
  redis: RedisClient,
  prefix: string,
  clock: Clock,
  target: MoveTarget,
  when: Pick<ScheduleInput, 'at' | 'delay'>,
  timeZone: string,
  names: ScheduleNames = SCHEDULE_FLAGS,
): Promise<MoveResult> {
  const now = clock.now();
  const atMs = resolveSchedule({ at: when.at, delay: when.delay }, now, timeZone, names).notBefore ?? now;
  return moveCall(redis, prefix, clock, target, atMs, names);
}
