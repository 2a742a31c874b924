import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { callShards, callShardsOf, configureCallShards, shardIndexOf, shardPrefix, verifyCallShards } from '../../src/core/callShards.js';
import { loadConfig } from '../../src/core/config.js';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { systemClock } from '../../src/core/time.js';
import { DialRateLimiter } from '../../src/consumer/dialRateLimiter.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { hasRedisCluster, startClusterTopology, type ClusterTopology } from '../helpers/redisTopology.js';
import { overLimitWindowsUnexplained, STAMP_AFTER_STALL_SLACK_MS, STAMP_STALL_MIN_MS, watchLoopStalls } from '../helpers/rollingWindow.js';
import { runCli } from '../helpers/runCli.js';
import { connectTestRedis, deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

/**
 * Issue 14: the `calls` queue and each campaign's records spread over CALL_SHARDS hash tags, so that on a Redis Cluster
 * they live on several masters, with the global DIAL_CPS window and the active-call leases still counted once.
 */

const SHARDS = 3;
/** Campaign names tried to find one per shard. */
const MAX_NAME_TRIES = 200;
/** Prefixes tried to find one whose three shards' slots live on three different masters (2/9 of them do). */
const MAX_TAG_TRIES = 100;
const CALLS_PER_CAMPAIGN = 10;
const RING_MS = 200;
const CPS = 10;
const ACTIVE_CAP = 4;
const CAMPAIGN_TIMEOUT_MS = 60_000;

/** One campaign name per shard, shard 0 first. */
function campaignPerShard(count: number, stem: string): string[] {
  const names: string[] = [];
  for (let shard = 0; shard < count; shard++) {
    for (let i = 0; i < MAX_NAME_TRIES; i++) {
      const name = `${stem}-${i}`;
      if (shardIndexOf(name, count) === shard && !names.includes(name)) {
        names.push(name);
        break;
      }
    }
  }
  expect(names).toHaveLength(count);
  return names;
}

describe('call shards', () => {
  it('puts shard k inside the prefix hash tag, or after an untagged prefix; shard 0 is the prefix itself', () => {
    expect(shardPrefix('{dialer}', 0)).toBe('{dialer}');
    expect(shardPrefix('{dialer}', 2)).toBe('{dialer-s2}');
    expect(shardPrefix('app{dialer}x', 1)).toBe('app{dialer-s1}x');
    expect(shardPrefix('bull', 1)).toBe('bull-s1');
    expect(callShards('{d}', 3).prefixes).toEqual(['{d}', '{d-s1}', '{d-s2}']);
  });

  it('maps a campaign to the same shard every time, and spreads campaigns over all of them', () => {
    const shards = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const campaign = `campaign-${i}`;
      expect(shardIndexOf(campaign, SHARDS)).toBe(shardIndexOf(campaign, SHARDS));
      shards.add(shardIndexOf(campaign, SHARDS));
    }
    expect([...shards].sort()).toEqual([0, 1, 2]);
    expect(shardIndexOf('anything', 1)).toBe(0);
  });

  it('reads CALL_SHARDS (1 to 64, 1 by default)', () => {
    expect(loadConfig({ QUEUE_PREFIX: 'p' }).callShards.count).toBe(1);
    expect(loadConfig({ QUEUE_PREFIX: 'p', CALL_SHARDS: '3' }).callShards.prefixes).toEqual(['p', 'p-s1', 'p-s2']);
    expect(() => loadConfig({ CALL_SHARDS: '0' })).toThrow('CALL_SHARDS');
    expect(() => loadConfig({ CALL_SHARDS: '65' })).toThrow('CALL_SHARDS: must be at most 64');
  });

  it("keeps a process' count for its prefix when a helper loads a configuration without CALL_SHARDS (the simulated agent does)", () => {
    const prefix = uniquePrefix('kept-count');
    try {
      loadConfig({ QUEUE_PREFIX: prefix, CALL_SHARDS: '3' });
      expect(loadConfig({ QUEUE_PREFIX: prefix }).callShards.count).toBe(3);
      expect(callShardsOf(prefix).count).toBe(3);
      expect(loadConfig({ QUEUE_PREFIX: prefix, CALL_SHARDS: '1' }).callShards.count).toBe(1); // said explicitly, it holds
    } finally {
      configureCallShards(prefix, 1);
    }
  });

  it('refuses a process whose CALL_SHARDS differs from the count its calls were set up with', async () => {
    const prefix = uniquePrefix('shard-count');
    const redis = connectTestRedis();
    try {
      await verifyCallShards(redis, callShards(prefix, 1)); // one shard: nothing recorded
      expect(await redis.exists(`${prefix}:dialer:call-shards`)).toBe(0);
      await verifyCallShards(redis, callShards(prefix, 3));
      await verifyCallShards(redis, callShards(prefix, 3));
      await expect(verifyCallShards(redis, callShards(prefix, 2))).rejects.toThrow('give every process CALL_SHARDS=3');
      await expect(verifyCallShards(redis, callShards(prefix, 1))).rejects.toThrow('were set up with 3 shards');
    } finally {
      await deleteKeysWithPrefix(redis, prefix);
      await redis.quit();
    }
  });

  it('claims a dial of another shard in two steps, taking the start back out of the CPS window when the mark is refused', async () => {
    const prefix = uniquePrefix('two-step');
    configureCallShards(prefix, SHARDS);
    const redis = connectTestRedis();
    const store = new CallStore(redis, prefix, systemClock);
    const [, campaignId] = campaignPerShard(SHARDS, 'two-step');
    if (campaignId === undefined) throw new Error('no campaign in shard 1');
    const limiter = new DialRateLimiter(redis, store.keys.dialWindow(), CPS);
    try {
      const call = { callId: 'c1', campaignId, phoneNumber: '+14155557300', metadata: {} };
      await store.createCalls(campaignId, [call]);
      await store.beginAttempt(call, 1, 'call-c1-1');
      expect(store.keys.callRecord(campaignId, 'c1').startsWith(`${prefix}-s1:`)).toBe(true);
      const lock = { key: `${prefix}-s1:calls:c1:lock`, token: 'mine' };

      // not this process' job: refused, and the window holds no start for it
      await redis.set(lock.key, 'another', 'PX', 60_000);
      const refused = limiter.startWindow();
      expect(await store.claimDial(campaignId, 'c1', 1, lock, store.keys.platformBackoff(), refused)).toEqual({ status: 'lost_lock' });
      expect(await redis.zscore(refused.logKey, refused.member)).toBeNull();

      await redis.set(lock.key, lock.token, 'PX', 60_000);
      const taken = limiter.startWindow();
      expect(await store.claimDial(campaignId, 'c1', 1, lock, store.keys.platformBackoff(), taken)).toEqual({ status: 'ok' });
      expect(await redis.zscore(taken.logKey, taken.member)).not.toBeNull();
      expect((await store.get(campaignId, 'c1'))?.dialSentAttempt).toBe(1);
      // the same attempt is never claimed twice
      expect(await store.claimDial(campaignId, 'c1', 1, lock, store.keys.platformBackoff(), limiter.startWindow())).toEqual({ status: 'already_sent' });
    } finally {
      for (const p of callShards(prefix, SHARDS).prefixes) await deleteKeysWithPrefix(redis, p);
      configureCallShards(prefix, 1);
      await redis.quit();
    }
  });
});

describe.skipIf(!hasRedisCluster)('campaigns spread over 3 call shards on a 3-master Redis Cluster', () => {
  let cluster: ClusterTopology;
  let p: TestPipeline;
  let prefix = '';
  let env: Record<string, string> = {};

  beforeAll(async () => {
    cluster = await startClusterTopology();
    // a prefix whose three shards live on three different masters
    for (let i = 0; i < MAX_TAG_TRIES && prefix === ''; i++) {
      const candidate = `{t-shards-${randomUUID().slice(0, 8)}}`;
      const ports = await Promise.all(callShards(candidate, SHARDS).prefixes.map((shard) => cluster.portForKey(shard)));
      if (new Set(ports).size === SHARDS) prefix = candidate;
    }
    expect(prefix).not.toBe('');
    env = {
      REDIS_CLUSTER_NODES: cluster.nodes.split(',')[0] ?? '',
      QUEUE_PREFIX: prefix,
      CALL_SHARDS: String(SHARDS),
      DIAL_CPS: String(CPS),
      DIAL_MAX_ACTIVE_CALLS: String(ACTIVE_CAP),
    };
    p = await startTestPipeline('shards', { network: { default: { type: 'decline', afterMs: RING_MS } }, env, dialers: 2 });
  }, 60_000);

  afterAll(async () => {
    await p?.close().catch(() => undefined); // the cluster's teardown below frees what this could not
    await cluster?.close();
  });

  it('dials every number once, ends every call with one outcome, and keeps DIAL_CPS and DIAL_MAX_ACTIVE_CALLS across shards', async () => {
    const campaigns = campaignPerShard(SHARDS, 'spread');
    const numbers = new Map<string, string>();
    let ringing = 0;
    let maxRinging = 0;
    p.sim.events.on('call_dialing', () => (maxRinging = Math.max(maxRinging, ++ringing)));
    p.sim.events.on('call_failed', () => (ringing -= 1)); // each declines
    const probe = watchLoopStalls(STAMP_STALL_MIN_MS);
    let n = 0;
    for (const campaignId of campaigns) {
      const requests = Array.from({ length: CALLS_PER_CAMPAIGN }, () => {
        const phoneNumber = `+1415556${String(7000 + n++).padStart(4, '0')}`;
        numbers.set(phoneNumber, campaignId);
        return { phoneNumber, campaignId };
      });
      await p.producer.enqueueCalls(requests);
    }
    for (const campaignId of campaigns) {
      const counters = await waitFor(
        async () => {
          const c = await p.store.counters(campaignId);
          return c.terminal >= CALLS_PER_CAMPAIGN ? c : undefined;
        },
        CAMPAIGN_TIMEOUT_MS,
        `every call of ${campaignId} to end`,
      );
      expect(counters).toEqual({ total: CALLS_PER_CAMPAIGN, terminal: CALLS_PER_CAMPAIGN, undialed: 0, byOutcome: { declined: CALLS_PER_CAMPAIGN } });
    }
    const stalls = probe.stop();
    const dials = p.sim.calls.filter((c) => numbers.has(c.phoneNumber));
    expect(dials).toHaveLength(numbers.size);
    expect(new Set(dials.map((c) => c.phoneNumber)).size).toBe(numbers.size);
    // one window and one set of leases for every shard
    expect(overLimitWindowsUnexplained(dials.map((c) => c.receivedAt), 1000, CPS, stalls, STAMP_AFTER_STALL_SLACK_MS)).toEqual([]);
    expect(maxRinging).toBeLessThanOrEqual(ACTIVE_CAP);

    // each campaign's records and dial jobs live on the master serving its shard's slot
    for (const [shard, campaignId] of campaigns.entries()) {
      const shardKeys = p.config.callShards.prefixes[shard] ?? '';
      expect(p.config.callShards.prefixOf(campaignId)).toBe(shardKeys);
      const node = new Redis({ host: '127.0.0.1', port: await cluster.portForKey(shardKeys), lazyConnect: true });
      try {
        const [, records] = await node.scan('0', 'MATCH', `${shardKeys}:dialer:{${campaignId}}:call:*`, 'COUNT', 100_000);
        expect(records).toHaveLength(CALLS_PER_CAMPAIGN);
        const [, jobs] = await node.scan('0', 'MATCH', `${shardKeys}:${CALLS_QUEUE}:*`, 'COUNT', 100_000);
        expect(jobs.length).toBeGreaterThan(0);
      } finally {
        node.disconnect();
      }
    }
  }, 90_000);

  it("moves a job another service pushed onto QUEUE_PREFIX's own queue to its campaign's shard, and dials it once there", async () => {
    const [, , campaignId] = campaignPerShard(SHARDS, 'pushed');
    if (campaignId === undefined) throw new Error('no campaign in shard 2');
    const own = new Queue(CALLS_QUEUE, { connection: p.redis, prefix });
    const callId = `pushed-${randomUUID().slice(0, 8)}`;
    try {
      await own.add('dial', { callId, campaignId, phoneNumber: '+14155567990' }, { jobId: callId });
      // pushed without a job id, as the guide's shape allows: BullMQ numbers it, and the call is `job-<n>`
      const numbered = await own.add('dial', { phone_number: '+14155567991', campaign_id: campaignId });
      const numberedRecord = await p.waitForOutcome(campaignId, `job-${numbered.id ?? ''}`, 30_000);
      expect(numberedRecord.outcome).toBe('declined');
    } finally {
      await own.close();
    }
    const record = await p.waitForOutcome(campaignId, callId, 30_000);
    expect(record.outcome).toBe('declined');
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155567990')).toHaveLength(1);
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155567991')).toHaveLength(1);
  }, 60_000);

  it('runs the command line there too: enqueue, report and cancel find a campaign in another shard', async () => {
    const [, campaignId] = campaignPerShard(SHARDS, 'cli');
    if (campaignId === undefined) throw new Error('no campaign in shard 1');
    const cliEnv = { ...p.env, ...env };
    expect(await runCli(['enqueue', '+14155567199', '--campaign', campaignId, '--delay', '1h'], cliEnv)).toMatchObject({ code: 0 });
    const report = await runCli(['report', '--campaign', campaignId, '--json'], cliEnv);
    expect(report.code).toBe(0);
    expect(report.stdout).toContain('+14155567199');
    expect(report.stdout).toContain('dueAt');
    expect(await runCli(['cancel', '--campaign', campaignId], cliEnv)).toMatchObject({ code: 0 });
    const after = await p.store.counters(campaignId);
    expect(after.byOutcome).toEqual({ canceled: 1 });
    // its job left the shard's queue with the cancel
    const shardQueue = new Queue(CALLS_QUEUE, { connection: p.redis, prefix: p.config.callShards.prefixOf(campaignId) });
    try {
      expect(await shardQueue.getJobCounts('wait', 'delayed', 'active')).toEqual({ wait: 0, delayed: 0, active: 0 });
    } finally {
      await shardQueue.close();
    }
  }, 60_000);
});

// the single test Redis is not touched by the cluster runs above
afterAll(async () => {
  const single = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    const [, keys] = await single.scan('0', 'MATCH', '{t-shards-*', 'COUNT', 100_000);
    expect(keys).toEqual([]);
  } finally {
    single.disconnect();
  }
});
