/**
 * The consumer's gate reads in one round trip (src/consumer/gateReads.ts, readDialGates.lua) answer what the five
 * separate reads they replace answer: the campaign's document, the cancel request, the do-not-call list, the pause and
 * the platform back-off, for a call whose record shares QUEUE_PREFIX's slot and for one in another call shard.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { CallStore } from '../../src/core/callStore.js';
import { callShardsOf, configureCallShards, shardIndexOf } from '../../src/core/callShards.js';
import { dialerKeys } from '../../src/core/keys.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { systemClock } from '../../src/core/time.js';
import { answeredGateStore, GateReader } from '../../src/consumer/gateReads.js';
import { PlatformBackoff } from '../../src/consumer/platformBackoff.js';
import { closeConnection } from '../../src/core/redisConnection.js';
import { connectTestRedis, deleteKeysWithPrefix, uniquePrefix } from '../helpers/testRedis.js';

const SHARDS = 3;
const BACKOFF_MS = 60_000;
let redis: RedisClient;
let prefix: string;
let store: CallStore;
let campaigns: CampaignStore;
let backoff: PlatformBackoff;
let reader: GateReader;

/** A campaign id that lives in shard `index` (FNV-1a of the id, callShards.ts). */
function campaignInShard(index: number): string {
  for (let n = 0; n < 1000; n++) if (shardIndexOf(`gate-${n}`, SHARDS) === index) return `gate-${n}`;
  throw new Error(`no campaign id found for shard ${index}`);
}

beforeAll(async () => {
  redis = connectTestRedis();
  prefix = uniquePrefix('gate-reads');
  configureCallShards(prefix, SHARDS);
  store = new CallStore(redis, prefix, systemClock);
  campaigns = new CampaignStore(redis, prefix, systemClock);
  const keys = dialerKeys(prefix, callShardsOf(prefix));
  backoff = new PlatformBackoff(redis, keys.platformBackoff(), keys.platformFailures());
  reader = new GateReader(redis, prefix, store, backoff.key);
});
afterAll(async () => {
  for (const shard of callShardsOf(prefix).prefixes) await deleteKeysWithPrefix(redis, shard);
  configureCallShards(prefix, 1);
  await closeConnection(redis);
});

describe('gate reads in one round trip', () => {
  it.each([
    ['QUEUE_PREFIX’s own shard', 0],
    ['another call shard', 1],
  ])('answers as the separate reads do, for a call in %s', async (_name, shard) => {
    const campaignId = campaignInShard(shard);
    const call = { campaignId, callId: `c-${shard}`, phoneNumber: `+1415555120${shard}`, metadata: {} };
    const other = { ...call, callId: `o-${shard}`, phoneNumber: `+1415555121${shard}` };
    await store.createCalls(campaignId, [call, other]);

    const separately = async (c: typeof call) => ({
      campaign: await campaigns.get(c.campaignId),
      cancelRequested: await store.isCancelRequested(c.campaignId, c.callId),
      doNotCall: await store.isDoNotCall(c.phoneNumber),
      paused: await store.isPaused(c.campaignId),
      backoffMs: await backoff.remainingMs(),
    });
    const together = async (c: typeof call) => {
      const reads = await reader.read(c);
      return {
        campaign: campaigns.parse(c.campaignId, reads.campaignDocument),
        cancelRequested: reads.cancelRequested,
        doNotCall: reads.doNotCall,
        paused: reads.paused,
        backoffMs: reads.backoffMs,
      };
    };

    // nothing set: no document, nothing requested, listed or paused, no back-off
    expect(await together(call)).toEqual(await separately(call));
    expect((await together(call)).campaign).toBeUndefined();

    // everything set for `call`; `other` is only in the same campaign
    await campaigns.create({ id: campaignId, max_attempts: 2 });
    await store.beginAttempt(call, 1, `call-${call.callId}-1`, { dialSent: true });
    expect(await store.requestCancel(campaignId, call.callId)).toBe(true);
    await store.addDoNotCall([call.phoneNumber]);
    await store.pauseCampaign(campaignId);
    await redis.set(backoff.key, '1', 'PX', BACKOFF_MS);
    try {
      const reads = await together(call);
      expect(reads).toMatchObject({ cancelRequested: true, doNotCall: true, paused: true });
      expect(reads.campaign?.max_attempts).toBe(2);
      expect(reads.backoffMs).toBeGreaterThan(0);
      expect(reads.backoffMs).toBeLessThanOrEqual(BACKOFF_MS);
      const { backoffMs: _a, ...rest } = reads;
      const { backoffMs: _b, ...restApart } = await separately(call);
      expect(rest).toEqual(restApart);
      const { backoffMs: _c, ...otherReads } = await together(other);
      expect(otherReads).toMatchObject({ cancelRequested: false, doNotCall: false, paused: true });
    } finally {
      await redis.del(backoff.key);
    }
  });

  it('answers the gates from the reads for the call read, and asks the store for anything else', async () => {
    const call = { campaignId: 'gate-store', callId: 'c-1', phoneNumber: '+14155551230' };
    await store.addDoNotCall(['+14155551231']);
    const gateStore = answeredGateStore(call, { campaignDocument: undefined, cancelRequested: true, doNotCall: true, paused: true, backoffMs: 0 }, store);
    expect(await gateStore.isCancelRequested('gate-store', 'c-1')).toBe(true);
    expect(await gateStore.isDoNotCall('+14155551230')).toBe(true);
    expect(await gateStore.isPaused('gate-store')).toBe(true);
    expect(await gateStore.isCancelRequested('gate-store', 'c-2')).toBe(false);
    expect(await gateStore.isDoNotCall('+14155551231')).toBe(true);
    expect(await gateStore.isPaused('gate-other')).toBe(false);
  });
});
