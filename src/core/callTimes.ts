/**
 * When a call that has not ended comes up, read from its dial job on the `calls` queue (job id = call id): the due
 * time of a job waiting in BullMQ's delayed set (a start time, a move, a retry delay, a gate's wait) and the expiry it
 * carries. `dialer call`, `dialer report --json` and `GET /v1/calls/{id}` show these.
 */
import type { Queue } from 'bullmq';
import type { RedisClient } from './redisClient.js';

/**
 * BullMQ scores a delayed job by its due time × 0x1000 (plus a counter) in `<queue>:delayed`
 * (bullmq src/commands/includes/getDelayedScore.lua).
 */
const DELAYED_SCORE_FACTOR = 0x1000;

/** When a call not ended yet comes up, from its dial job; a field is absent when that is not known. */
export interface CallTimes {
  /** Epoch ms its job is due: it waits in the delayed set until then. */
  dueAt?: number;
  /** Epoch ms after which it ends `expired` instead of ringing. */
  expiresAt?: number;
}

/** Calls whose times are read per pipeline by callTimesOf (two commands each). */
const TIMES_READ_BATCH = 1000;

/** CallTimes from a job's delayed-set score and its data (parsed; undefined when the job is gone). */
function timesFrom(score: string | null | undefined, data: unknown): CallTimes {
  const expires = typeof data === 'object' && data !== null ? (data as Record<string, unknown>).expiresAt : undefined;
  return {
    ...(typeof score === 'string' ? { dueAt: Math.floor(Number(score) / DELAYED_SCORE_FACTOR) } : {}),
    ...(typeof expires === 'number' ? { expiresAt: expires } : {}),
  };
}

/**
 * Reads `callId`'s CallTimes from `calls` (the dial queue) on `redis` (the connection it lives on); `{}` when its job is
 * gone or not waiting for a time.
 */
export async function callTimes(redis: RedisClient, calls: Queue, callId: string): Promise<CallTimes> {
  const [job, score] = await Promise.all([calls.getJob(callId), redis.zscore(calls.toKey('delayed'), callId)]);
  return timesFrom(score, job?.data);
}

/**
 * callTimes for many calls (`report --json`): each call's delayed-set score and job data, pipelined in batches, so a
 * campaign of 100,000 calls takes a hundred round trips, not 200,000. Calls with neither time are left out of the map.
 */
export async function callTimesOf(redis: RedisClient, calls: Queue, callIds: readonly string[]): Promise<Map<string, CallTimes>> {
  const delayedKey = calls.toKey('delayed');
  const times = new Map<string, CallTimes>();
  for (let i = 0; i < callIds.length; i += TIMES_READ_BATCH) {
    const batch = callIds.slice(i, i + TIMES_READ_BATCH);
    const pipeline = redis.pipeline();
    for (const callId of batch) {
      pipeline.zscore(delayedKey, callId);
      // the job's hash (job id = call id), as Queue.getJob reads it
      pipeline.hget(calls.toKey(callId), 'data');
    }
    const replies = (await pipeline.exec()) ?? [];
    batch.forEach((callId, k) => {
      const [scoreErr, score] = replies[2 * k] ?? [];
      const [dataErr, data] = replies[2 * k + 1] ?? [];
      if (scoreErr) throw scoreErr;
      if (dataErr) throw dataErr;
      // BullMQ stores a job's data as JSON text (Queue.add), as getJob would parse it
      const found = timesFrom(typeof score === 'string' ? score : null, typeof data === 'string' ? (JSON.parse(data) as unknown) : undefined);
      if (found.dueAt !== undefined || found.expiresAt !== undefined) times.set(callId, found);
    });
  }
  return times;
}

/**
 * callTimesOf for the calls of `records` that have not ended (an ended call's job may linger; its times are no longer
 * the call's): `report --json` and the API's campaign report. Reads nothing when every call has ended.
 */
export async function openCallTimes(redis: RedisClient, calls: Queue, records: readonly { callId: string; state: string }[]): Promise<Map<string, CallTimes>> {
  const open = records.filter((r) => r.state !== 'terminal').map((r) => r.callId);
  return open.length === 0 ? new Map() : callTimesOf(redis, calls, open);
}
