/**
 * Call shards: the `calls` queue and what is hot with it (each campaign's call records, counters, call list, held
 * and paused-held calls) split over CALL_SHARDS hash tags, so that on Redis Cluster they spread over the masters
 * instead of living in the one slot QUEUE_PREFIX's hash tag names. A campaign lives in one shard, picked by a hash of
 * its id: its records and counters stay together with its dial jobs (every script that touches them runs in one
 * slot), and consumers work every shard's queue. What is global stays under QUEUE_PREFIX itself (shard 0): the
 * DIAL_CPS window and the platform back-off, the active-call leases, the campaign index and definitions, the
 * do-not-call list, idempotency keys, and the `call-results` queue other services read.
 *
 * Shard 0 is QUEUE_PREFIX, so one shard (the default) is today's layout, key for key, and services that push jobs
 * straight onto `calls` under QUEUE_PREFIX keep being served: such a job is dialed from shard 0 whatever its campaign.
 * Shard k ≥ 1 puts `-s<k>` inside the prefix's hash tag (`{dialer}` → `{dialer-s1}`), or after an untagged prefix
 * (`bull` → `bull-s1`, a single node, where slots do not matter).
 *
 * The count is part of where data lives: every process sharing a Redis must use the same, and changing it would move
 * campaigns to other shards. The first process to start records it in Redis; one configured otherwise refuses to
 * start (verifyCallShards).
 */
import { ConfigError } from './errors.js';
import type { RedisClient } from './redisClient.js';
import { hashTag } from './redisTarget.js';

/** CALL_SHARDS' default: one shard, every key where QUEUE_PREFIX puts it. */
export const DEFAULT_CALL_SHARDS = 1;
/** Most shards: far more than the masters of any cluster a dialer needs (one node carries ~2,900 calls/s). */
export const MAX_CALL_SHARDS = 64;

/** FNV-1a 32-bit offset basis and prime (http://www.isthe.com/chongo/tech/comp/fnv/): a stable, cheap string hash. */
const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** Which shard a campaign lives in: FNV-1a of its id modulo the count (stable across processes and versions). */
export function shardIndexOf(campaignId: string, count: number): number {
  if (count <= 1) return 0;
  let hash = FNV_OFFSET_BASIS;
  for (let i = 0; i < campaignId.length; i++) {
    hash ^= campaignId.charCodeAt(i);
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash % count;
}

/** The key prefix of shard `index` under `prefix` (QUEUE_PREFIX): shard 0 is the prefix itself. */
export function shardPrefix(prefix: string, index: number): string {
  if (index === 0) return prefix;
  const tag = hashTag(prefix);
  if (tag === undefined) return `${prefix}-s${index}`;
  const at = prefix.indexOf(`{${tag}}`);
  return `${prefix.slice(0, at)}{${tag}-s${index}}${prefix.slice(at + tag.length + 2)}`;
}

/** The shards of one key space (QUEUE_PREFIX): how many, and where each campaign lives. */
export interface CallShards {
  /** QUEUE_PREFIX: shard 0's prefix, and where every global key lives. */
  readonly prefix: string;
  readonly count: number;
  /** Every shard's prefix, shard 0 first. */
  readonly prefixes: readonly string[];
  /** The prefix of the shard `campaignId` lives in (its dial jobs, records and counters). */
  prefixOf(campaignId: string): string;
}

/** The shards of `prefix` when there are `count` of them. */
export function callShards(prefix: string, count: number): CallShards {
  const prefixes = Array.from({ length: Math.max(1, count) }, (_, i) => shardPrefix(prefix, i));
  return {
    prefix,
    count: prefixes.length,
    prefixes,
    prefixOf: (campaignId) => prefixes[shardIndexOf(campaignId, prefixes.length)] ?? prefix,
  };
}

/**
 * Shard counts by QUEUE_PREFIX in this process. loadConfig records CALL_SHARDS for its prefix, so every store and
 * queue built for that prefix (there are dozens, in every command) finds its campaigns' shards without each being
 * handed the count; a prefix never configured has one shard.
 */
const configuredCounts = new Map<string, number>();

/** Records that `prefix` has `count` shards in this process (loadConfig does, from CALL_SHARDS). */
export function configureCallShards(prefix: string, count: number): void {
  if (count <= DEFAULT_CALL_SHARDS) configuredCounts.delete(prefix);
  else configuredCounts.set(prefix, count);
}

/** The shards of `prefix` as configured in this process (one unless configureCallShards said otherwise). */
export function callShardsOf(prefix: string): CallShards {
  return callShards(prefix, configuredCounts.get(prefix) ?? DEFAULT_CALL_SHARDS);
}

/** Where the shard count a key space was set up with is kept (global: under QUEUE_PREFIX). */
export function callShardsKey(prefix: string): string {
  return `${prefix}:dialer:call-shards`;
}

/**
 * Checks this process' shard count against the one recorded in Redis, recording a count above one when none is (Redis
 * `SET … NX GET`, Redis ≥ 7.0; one shard, the layout without the setting, is never recorded). Throws ConfigError when they differ: a process with another count would look for campaigns in the
 * wrong shards.
 */
export async function verifyCallShards(redis: RedisClient, shards: CallShards): Promise<void> {
  const key = callShardsKey(shards.prefix);
  // one shard is the layout a key space has without the setting: it writes nothing, only checks nobody set more
  if (shards.count > DEFAULT_CALL_SHARDS && (await redis.get(key)) === null) await refuseUnshardedCalls(redis, shards);
  const recorded = shards.count > DEFAULT_CALL_SHARDS ? await redis.set(key, String(shards.count), 'NX', 'GET') : await redis.get(key);
  if (recorded === null || Number(recorded) === shards.count) return;
  throw new ConfigError(
    `CALL_SHARDS is ${shards.count} but the calls under QUEUE_PREFIX=${shards.prefix} were set up with ${recorded} shards: give every process CALL_SHARDS=${recorded}`,
  );
}

/** Campaigns named in a refusal of unsharded calls, at most (the rest are counted). */
const NAMED_CAMPAIGNS = 5;

/**
 * Before a count above one is first recorded: throws ConfigError when calls set up with one shard (no count recorded)
 * are still on record for campaigns that `shards` puts in another shard, since they would no longer be found (the
 * shard-0 call lists of such campaigns exist). Reads the campaign index and one EXISTS per such campaign, in
 * QUEUE_PREFIX's slot.
 */
async function refuseUnshardedCalls(redis: RedisClient, shards: CallShards): Promise<void> {
  const moved = (await redis.smembers(`${shards.prefix}:dialer:campaigns`)).filter((id) => shards.prefixOf(id) !== shards.prefix).sort();
  if (moved.length === 0) return;
  const pipeline = redis.pipeline();
  // the call list dialerKeys gives such a campaign with one shard (keys.ts; not imported: keys.ts imports this file)
  for (const id of moved) pipeline.exists(`${shards.prefix}:dialer:{${id}}:calls`);
  const replies = (await pipeline.exec()) ?? [];
  const stranded = moved.filter((_, i) => {
    const [err, found] = replies[i] ?? [];
    if (err) throw err;
    return found === 1;
  });
  if (stranded.length === 0) return;
  const named = stranded.slice(0, NAMED_CAMPAIGNS).join(', ') + (stranded.length > NAMED_CAMPAIGNS ? ` and ${stranded.length - NAMED_CAMPAIGNS} more` : '');
  throw new ConfigError(
    `CALL_SHARDS is ${shards.count} but QUEUE_PREFIX=${shards.prefix} holds calls set up with one shard that it would move to other shards (campaigns ${named}): drain and purge them (dialer purge --campaign ID), or start the sharded deployment on a fresh QUEUE_PREFIX`,
  );
}
