import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { LuaScript, replies, type ScriptArg } from './luaScript.js';
import type { RedisClient } from './redisClient.js';

/** Job ids per removeJobsFromSets.lua run (each id: a few O(1) or O(log N) commands, so about 5 ms of Redis). */
export const JOB_REMOVAL_BATCH = 500;
/** List entries per removeJobsFromList.lua run: bounds the time one run holds Redis to a few ms. */
const LIST_WINDOW = 200;
/** How long the set of ids still to take out of the lists lives if this process dies halfway (seconds). */
const PENDING_SET_TTL_S = 3600;
/** Runs over a list at most, as a multiple of the windows it has: entries pushed meanwhile are read again, never for ever. */
const MAX_WINDOW_PASSES = 3;

const LUA_FOLDER = new URL('./lua/', import.meta.url);

const removedAndLeft = (reply: unknown): [number, string[]] | undefined => {
  if (!Array.isArray(reply) || reply.length !== 2) return undefined;
  const [removed, left]: unknown[] = reply;
  return typeof removed === 'number' && Array.isArray(left) && left.every((x) => typeof x === 'string') ? [removed, left] : undefined;
};
const fourNumbers = (reply: unknown): [number, number, number, number] | undefined => {
  const numbers = replies.integers(reply);
  const [a, b, c, d] = numbers ?? [];
  return numbers?.length === 4 && a !== undefined && b !== undefined && c !== undefined && d !== undefined ? [a, b, c, d] : undefined;
};

const fromSets = new LuaScript<readonly string[], readonly ScriptArg[], [number, string[]]>('removeJobsFromSets', LUA_FOLDER, 'variable', removedAndLeft);
const fromList = new LuaScript<
  [list: string, pending: string, events: string, meta: string],
  [queuePrefix: string, start: number, size: number, state: 'wait' | 'paused'],
  [removed: number, next: number, length: number, pending: number]
>('removeJobsFromList', LUA_FOLDER, 4, fourNumbers);

/**
 * Removes the jobs `jobIds` from `queue` as `queue.remove(id)` would for each (a locked job stays and counts 0; a
 * job that is not there counts 0, where `queue.remove` answers 1), without its O(N) LREM per job, which made canceling or purging a whole campaign quadratic:
 * removeJobsFromSets.lua takes JOB_REMOVAL_BATCH ids at a time out of the sorted sets (delayed, prioritized, ...) and
 * notes the rest in a set; removeJobsFromList.lua then reads the wait and paused lists once, LIST_WINDOW entries per
 * run, and takes out the noted ones (BullMQ 6's removeJob-2.lua is the model; see both scripts). Jobs the scripts
 * leave alone (a scheduler's, a parent's or child's, or one no longer where it was, e.g. taken by a worker) go
 * through `queue.remove`. Every Redis command is short: no run holds Redis more than a few ms. Answers how many of
 * the jobs were there and are removed; throws Redis' errors.
 */
export async function removeQueuedJobs(connection: RedisClient, queue: Queue, jobIds: readonly string[]): Promise<number> {
  const queuePrefix = queue.toKey('');
  const pending = queue.toKey(`dialer-removing:${randomUUID()}`);
  const events = queue.toKey('events');
  const meta = queue.toKey('meta');
  let removed = 0;
  const leftToBullmq: string[] = [];
  try {
    for (let i = 0; i < jobIds.length; i += JOB_REMOVAL_BATCH) {
      const [count, left] = await fromSets.run(connection, [pending, events, meta], [queuePrefix, PENDING_SET_TTL_S, ...jobIds.slice(i, i + JOB_REMOVAL_BATCH)]);
      removed += count;
      leftToBullmq.push(...left);
    }
    for (const [list, state] of [[queue.toKey('wait'), 'wait'], [queue.toKey('paused'), 'paused']] as const) {
      let start = 0;
      let length = await connection.llen(list);
      let stillPending = await connection.scard(pending);
      const maxRuns = MAX_WINDOW_PASSES * (Math.ceil(length / LIST_WINDOW) + 1);
      for (let runs = 0; stillPending > 0 && start < length && runs < maxRuns; runs++) {
        const [count, next, newLength, left] = await fromList.run(connection, [list, pending, events, meta], [queuePrefix, start, LIST_WINDOW, state]);
        removed += count;
        start = next;
        length = newLength;
        stillPending = left;
      }
    }
    // not found in a list (taken by a worker meanwhile, or in `active` with its lock gone): BullMQ's own removal
    leftToBullmq.push(...(await connection.smembers(pending)));
  } finally {
    await connection.del(pending);
  }
  for (const id of leftToBullmq) removed += await queue.remove(id);
  return removed;
}
