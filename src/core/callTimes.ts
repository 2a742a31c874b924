/**
 * When a call that has not ended comes up, read from its dial job on the `calls` queue (job id = call id): the due
 * time of a job waiting in BullMQ's delayed set (a start time, a move, a retry delay, a gate's wait) and the expiry it
 * carries. `dialer call` and `GET /v1/calls/{id}` both show these.
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

/**
 * Reads `callId`'s CallTimes from `calls` (the dial queue) on `redis` (the connection it lives on); `{}` when its job is
 * gone or not waiting for a time.
 */
export async function callTimes(redis: RedisClient, calls: Queue, callId: string): Promise<CallTimes> {
  const [job, score] = await Promise.all([calls.getJob(callId), redis.zscore(calls.toKey('delayed'), callId)]);
  const data: unknown = job?.data;
  const expires = typeof data === 'object' && data !== null ? (data as Record<string, unknown>).expiresAt : undefined;
  return {
    ...(score === null ? {} : { dueAt: Math.floor(Number(score) / DELAYED_SCORE_FACTOR) }),
    ...(typeof expires === 'number' ? { expiresAt: expires } : {}),
  };
}
