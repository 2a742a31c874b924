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
import { CallQueues } from '../core/callQueues.js';
import { Queue } from 'bullmq';
import { CallStore } from '../core/callStore.js';
import type { RedisClient } from '../core/redisClient.js';
import { CALLS_QUEUE, CALL_RESULTS_QUEUE } from '../core/queues.js';
import { HOUR, SECOND, systemClock } from '../core/time.js';
import { OUTCOME_WATCHDOG_QUEUE } from '../core/outcomeWatchdogQueue.js';
import { removeQueuedJobs } from '../core/removeQueuedJobs.js';
import { WEBHOOKS_QUEUE } from './webhooks.js';

export const DAY = 24 * HOUR;

/** Records per purge script: small enough that one script blocks Redis for a few milliseconds only. */
const PURGE_BATCH = 500;
/** Candidate ids per list compaction (each compaction reads the campaign's whole call list once). */
const COMPACT_BATCH = 5000;
/**
 * The queues that hold a copy of a call's data under the call id as job id (`calls` once per call shard: a campaign's
 * jobs are on its shard's).
 */
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
  /** BullMQ jobs of the purged calls that were there and are removed (calls, call-results, webhooks, outcome watchdog). */
  jobsRemoved: number;
}

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
  // every write to the records, counters and call lists goes through the call store
  const store = new CallStore(connection, prefix, systemClock);
  const campaigns = request.campaignId !== undefined ? [request.campaignId] : await store.campaigns();
  const calls = new CallQueues(connection, prefix);
  const queues = PER_CALL_QUEUES.filter((name) => name !== CALLS_QUEUE).map((name) => new Queue(name, { connection, prefix }));
  const summary: PurgeSummary = { purged: 0, campaigns: campaigns.length, campaignsRemoved: 0, inFlight: 0, jobsRemoved: 0 };
  try {
    for (const campaignId of campaigns) {
      const result = await purgeCampaign(store, campaignId, request.before);
      summary.purged += result.purged.length;
      summary.inFlight += result.inFlight;
      // in one pass over each queue's wait list per batch: queue.remove's LREM per job is quadratic in the campaign
      for (const queue of [calls.forCampaign(campaignId), ...queues]) summary.jobsRemoved += await removeQueuedJobs(connection, queue, result.purged);
      // a job another service pushed onto QUEUE_PREFIX's own `calls` for a campaign of another shard leaves its copy
      // there when a consumer moves it (same job id, kept as BullMQ keeps it: for ever by default): it goes too. Not
      // counted: it is a leftover copy of a job counted on the campaign's shard.
      const home = calls.forCampaign(campaignId);
      if (home !== calls.primary()) await removeQueuedJobs(connection, calls.primary(), result.purged);
      // a whole campaign goes once nothing of it is on record; a dated purge keeps counters that still count calls
      const wholeCampaign = request.before === undefined;
      if (await store.dropCampaignIfEmpty(campaignId, { keepCounted: !wholeCampaign })) summary.campaignsRemoved += 1;
    }
  } finally {
    await Promise.all([calls.close(), ...queues.map((queue) => queue.close())]);
  }
  return summary;
}

async function purgeCampaign(store: CallStore, campaignId: string, before: number | undefined): Promise<{ purged: string[]; inFlight: number }> {
  const ids = await store.callIds(campaignId);
  const purged: string[] = [];
  const gone: string[] = [];
  let inFlight = 0;
  for (const batch of chunks(ids, PURGE_BATCH)) {
    const result = await store.purgeEnded(campaignId, batch, before);
    purged.push(...result.purged);
    gone.push(...result.gone);
    inFlight += result.inFlight;
  }
  for (const batch of chunks([...purged, ...gone], COMPACT_BATCH)) await store.compactCallList(campaignId, batch);
  return { purged, inFlight };
}
