/**
 * Data retention: how long an ended call's record (number, metadata, transcript, survey answers) is kept, and
 * `purge`, which deletes ended calls on request.
 *
 * - A record gets a TTL of RECORD_RETENTION_DAYS when it becomes terminal (applyTerminal.lua, in the same step).
 *   Records in flight never expire. A record that expires leaves its campaign's counters as they were: the call
 *   ended, so it stays counted in `total` and under its outcome, never as pending; only its line and details go.
 *   Its id stays in the campaign's call list until a purge compacts the list (the report skips ids with no record).
 * - `purge` deletes ended records and takes them out of the counters too (the campaign then reads as if they were
 *   never made), removes their ids from the call list, and removes their BullMQ jobs (calls, call-results, webhooks,
 *   outcome watchdog) so no copy of the number, metadata or transcript stays behind. Calls in flight are never
 *   touched. A campaign left with no call on record is removed (for `--before`, only if its counters count nothing).
 */
import { Queue } from 'bullmq';
import type { RedisClient } from '../core/redisClient.js';
import { dialerKeys, type DialerKeys } from '../core/keys.js';
import { LuaScript, replies, type ScriptArg } from '../core/luaScript.js';
import { CALLS_QUEUE, CALL_RESULTS_QUEUE } from '../core/queues.js';
import { HOUR, SECOND } from '../core/time.js';
import { OUTCOME_WATCHDOG_QUEUE } from '../core/outcomeWatchdogQueue.js';
import { WEBHOOKS_QUEUE } from './webhooks.js';

export const DAY = 24 * HOUR;

/** Records per purge script: small enough that one script blocks Redis for a few milliseconds only. */
const PURGE_BATCH = 500;
/** Candidate ids per list compaction (each compaction reads the campaign's whole call list once). */
const COMPACT_BATCH = 5000;
/** Calls whose BullMQ jobs are removed at once. */
const JOB_REMOVAL_CONCURRENCY = 64;
/** The queues that hold a copy of a call's data under the call id as job id. */
const PER_CALL_QUEUES = [CALLS_QUEUE, CALL_RESULTS_QUEUE, WEBHOOKS_QUEUE, OUTCOME_WATCHDOG_QUEUE] as const;

/** RECORD_RETENTION_DAYS as the record's TTL in seconds; 0 keeps records for ever. */
export function recordRetentionSeconds(days: number): number {
  return Math.round((days * DAY) / SECOND);
}

/** What to purge: a whole campaign, ended calls that ended before a time (epoch ms), or both (that campaign's). */
export type PurgeRequest = { campaignId: string; before?: number } | { campaignId?: string; before: number };

/** What a purge did. */
export interface PurgeSummary {
  /** Ended calls whose records were deleted (and taken out of their campaign's counters). */
  purged: number;
  /** Campaigns looked at. */
  campaigns: number;
  /** Campaigns removed entirely: no call left on record. */
  campaignsRemoved: number;
  /** Calls still in flight, left alone. */
  inFlight: number;
  /** BullMQ jobs of the purged calls removed (calls, call-results, webhooks, outcome watchdog). */
  jobsRemoved: number;
}

const LUA_FOLDER = new URL('../core/lua/', import.meta.url);

/** `[purged call ids, ids already gone, calls still in flight]`, as purgeCalls.lua answers. */
type PurgeReply = [string[], string[], number];
const purgeReply = (reply: unknown): PurgeReply | undefined => {
  if (!Array.isArray(reply) || reply.length !== 3) return undefined;
  const [purged, gone, flying]: unknown[] = reply;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  return strings(purged) && strings(gone) && typeof flying === 'number' ? [purged, gone, flying] : undefined;
};

/** The retention scripts (src/core/lua), with their keys and arguments; see each file's header. */
const scripts = {
  purgeCalls: new LuaScript<readonly string[], readonly ScriptArg[], PurgeReply>('purgeCalls', LUA_FOLDER, 'variable', purgeReply),
  compactCallList: new LuaScript<readonly string[], readonly string[], number>('compactCallList', LUA_FOLDER, 'variable', replies.integer),
  dropEmptyCampaign: new LuaScript<[callList: string, counters: string, pausedHeld: string], [keepCounters: '0' | '1'], number>(
    'dropEmptyCampaign',
    LUA_FOLDER,
    3,
    replies.integer,
  ),
};

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Deletes ended calls: every ended call of `campaignId`, or (with `before`) those that ended before that time, in
 * one campaign or in all. Counters, call lists and per-call BullMQ jobs are kept consistent (see the module comment).
 * Safe while consumers and the results worker run: each step is one Lua script that re-checks the record.
 */
export async function purgeCalls(connection: RedisClient, prefix: string, request: PurgeRequest): Promise<PurgeSummary> {
  const redis = connection;
  const keys = dialerKeys(prefix);
  const campaigns = request.campaignId !== undefined ? [request.campaignId] : (await redis.smembers(keys.campaignIndex())).sort();
  const queues = PER_CALL_QUEUES.map((name) => new Queue(name, { connection, prefix }));
  const summary: PurgeSummary = { purged: 0, campaigns: campaigns.length, campaignsRemoved: 0, inFlight: 0, jobsRemoved: 0 };
  try {
    for (const campaignId of campaigns) {
      const result = await purgeCampaign(redis, keys, campaignId, request.before);
      summary.purged += result.purged.length;
      summary.inFlight += result.inFlight;
      for (const batch of chunks(result.purged, JOB_REMOVAL_CONCURRENCY)) {
        const removed = await Promise.all(batch.flatMap((callId) => queues.map((queue) => queue.remove(callId))));
        summary.jobsRemoved += removed.reduce((sum, n) => sum + n, 0);
      }
      // a whole campaign goes once nothing of it is on record; a dated purge keeps counters that still count calls
      const wholeCampaign = request.before === undefined;
      if (await dropIfEmpty(redis, keys, campaignId, wholeCampaign)) summary.campaignsRemoved += 1;
    }
  } finally {
    await Promise.all(queues.map((queue) => queue.close()));
  }
  return summary;
}

async function purgeCampaign(
  redis: RedisClient,
  keys: DialerKeys,
  campaignId: string,
  before: number | undefined,
): Promise<{ purged: string[]; inFlight: number }> {
  const ids = await redis.lrange(keys.campaignCalls(campaignId), 0, -1);
  const purged: string[] = [];
  const gone: string[] = [];
  let inFlight = 0;
  for (const batch of chunks(ids, PURGE_BATCH)) {
    const [purgedIds, goneIds, flying] = await scripts.purgeCalls.run(
      redis,
      [keys.campaignCounters(campaignId), ...batch.map((id) => keys.callRecord(campaignId, id))],
      [before ?? '', ...batch],
    );
    purged.push(...purgedIds);
    gone.push(...goneIds);
    inFlight += flying;
  }
  for (const batch of chunks([...purged, ...gone], COMPACT_BATCH)) {
    await scripts.compactCallList.run(redis, [keys.campaignCalls(campaignId), ...batch.map((id) => keys.callRecord(campaignId, id))], batch);
  }
  return { purged, inFlight };
}

/** Removes the campaign's keys and index entries when no call is left on record; true if removed. */
async function dropIfEmpty(redis: RedisClient, keys: DialerKeys, campaignId: string, wholeCampaign: boolean): Promise<boolean> {
  const dropped = await scripts.dropEmptyCampaign.run(
    redis,
    [keys.campaignCalls(campaignId), keys.campaignCounters(campaignId), keys.pausedHeld(campaignId)],
    [wholeCampaign ? '0' : '1'],
  );
  if (dropped !== 1) return false;
  await redis.multi().srem(keys.campaignIndex(), campaignId).srem(keys.pausedCampaigns(), campaignId).exec();
  // a call enqueued between the two steps recreated the counters: keep the campaign listed
  if ((await redis.exists(keys.campaignCounters(campaignId))) === 1) await redis.sadd(keys.campaignIndex(), campaignId);
  return true;
}
