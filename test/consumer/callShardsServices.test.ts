import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallCampaignIndex } from '../../src/api/callIndex.js';
import { startApiServer } from '../../src/api/server.js';
import { CallQueues } from '../../src/core/callQueues.js';
import { callShards, callShardsKey, configureCallShards, shardIndexOf, verifyCallShards } from '../../src/core/callShards.js';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { systemClock } from '../../src/core/time.js';
import { purgeCalls } from '../../src/results/retention.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { hasRedisCluster, startClusterTopology, type ClusterTopology } from '../helpers/redisTopology.js';
import { connectTestRedis, deleteKeysWithPrefix, uniquePrefix } from '../helpers/testRedis.js';

/**
 * Call shards (README "Call shards") seen from the services around the dial pipeline: the queue dashboard shows each
 * shard's `calls` queue, `purge` leaves no copy of a moved pushed job behind, and the API finds a call by id when the
 * campaigns' records live on several masters of a cluster.
 */

const SHARDS = 3;
/** Campaign names tried to find one per shard. */
const MAX_NAME_TRIES = 200;
/** Prefixes tried to find one whose three shards' slots live on three different masters (2/9 of them do). */
const MAX_TAG_TRIES = 100;
const RING_MS = 50;
const OUTCOME_TIMEOUT_MS = 30_000;
/** Far enough ahead that no consumer takes the dashboard's jobs during the test. */
const LATER_MS = 60 * 60 * 1000;
const ADMIN_TOKEN = 'shards-admin-token-0123456789abcdef';

/** One campaign name per shard, shard 0 first. */
function campaignPerShard(stem: string): string[] {
  const names: string[] = [];
  for (let shard = 0; shard < SHARDS; shard++) {
    for (let i = 0; i < MAX_NAME_TRIES; i++) {
      const name = `${stem}-${i}`;
      if (shardIndexOf(name, SHARDS) === shard) {
        names.push(name);
        break;
      }
    }
  }
  expect(names).toHaveLength(SHARDS);
  return names;
}

describe('turning call shards on over calls set up with one shard', () => {
  it('refuses a count above one while campaigns it would move still have calls on record, and records it once they are purged', async () => {
    const prefix = uniquePrefix('shards-on');
    const redis = connectTestRedis();
    const [stays, moves] = campaignPerShard('turn-on');
    if (stays === undefined || moves === undefined) throw new Error('no campaigns in shards 0 and 1');
    try {
      // a deployment without the setting: one shard, every campaign under QUEUE_PREFIX
      const store = new CallStore(redis, prefix, systemClock);
      await store.createCalls(stays, [{ callId: 'on-0', phoneNumber: '+14155567830', metadata: {} }]);
      await verifyCallShards(redis, callShards(prefix, SHARDS)); // its only campaign stays in shard 0
      await redis.del(callShardsKey(prefix));
      await store.createCalls(moves, [{ callId: 'on-1', phoneNumber: '+14155567831', metadata: {} }]);

      await expect(verifyCallShards(redis, callShards(prefix, SHARDS))).rejects.toThrow(`holds calls set up with one shard that it would move to other shards (campaigns ${moves})`);
      expect(await redis.exists(callShardsKey(prefix))).toBe(0);
      await verifyCallShards(redis, callShards(prefix, 1)); // the deployment as it was carries on

      await store.applyTerminal({ callId: 'on-1', campaignId: moves, outcome: 'canceled', reportedBy: 'operator', endedAt: Date.now() });
      await purgeCalls(redis, prefix, { campaignId: moves });
      await verifyCallShards(redis, callShards(prefix, SHARDS));
      expect(await redis.get(callShardsKey(prefix))).toBe(String(SHARDS));
    } finally {
      for (const shard of callShards(prefix, SHARDS).prefixes) await deleteKeysWithPrefix(redis, shard);
      await redis.quit();
    }
  });
});

describe('call shards on one Redis: the dashboard and purge', () => {
  let p: TestPipeline;

  beforeAll(async () => {
    p = await startTestPipeline('shard-services', { network: { default: { type: 'decline', afterMs: RING_MS } }, env: { CALL_SHARDS: String(SHARDS) } });
  }, 60_000);

  afterAll(async () => {
    const prefix = p.config.queuePrefix;
    await p.close();
    const cleanup = createProducerConnection(p.config.redis);
    try {
      await waitUntilReady(cleanup);
      for (const shard of callShards(prefix, SHARDS).prefixes) await deleteKeysWithPrefix(cleanup, shard);
    } finally {
      await closeConnection(cleanup);
    }
  });

  it("purge removes the copy a pushed job leaves on QUEUE_PREFIX's queue when it is moved to its campaign's shard", async () => {
    const [, campaignId] = campaignPerShard('purge-pushed');
    if (campaignId === undefined) throw new Error('no campaign in shard 1');
    const prefix = p.config.queuePrefix;
    const callId = `pushed-${randomUUID().slice(0, 8)}`;
    const own = new Queue(CALLS_QUEUE, { connection: p.redis, prefix });
    const home = new Queue(CALLS_QUEUE, { connection: p.redis, prefix: p.config.callShards.prefixOf(campaignId) });
    try {
      await own.add('dial', { callId, campaignId, phoneNumber: '+14155567810' }, { jobId: callId });
      expect((await p.waitForOutcome(campaignId, callId, OUTCOME_TIMEOUT_MS)).outcome).toBe('declined');
      // the moved job's copy stays on shard 0 with the number in its data
      expect((await own.getJob(callId))?.data).toMatchObject({ phoneNumber: '+14155567810' });

      expect(await purgeCalls(p.redis, prefix, { campaignId })).toMatchObject({ purged: 1 });
      expect(await home.getJob(callId)).toBeUndefined();
      expect(await own.getJob(callId)).toBeUndefined();
    } finally {
      await Promise.all([own.close(), home.close()]);
    }
  }, 60_000);

  it("shows every shard's calls queue on the dashboard, each with its own jobs", async () => {
    const server = await startApiServer({ config: p.config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: `${ADMIN_TOKEN}:admin` });
    const queues = callShards(p.config.queuePrefix, SHARDS).prefixes.map((prefix) => new Queue(CALLS_QUEUE, { connection: p.redis, prefix }));
    try {
      // shard k's queue holds k + 1 delayed jobs
      for (const [shard, queue] of queues.entries()) {
        for (let n = 0; n <= shard; n++) {
          const jobId = `dash-${shard}-${n}-${randomUUID().slice(0, 8)}`;
          await queue.add('dial', { callId: jobId }, { jobId, delay: LATER_MS });
        }
      }
      const response = await fetch(`${server.url}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { queues: { name: string; counts: Record<string, number> }[] };
      const delayed = Object.fromEntries(body.queues.filter((q) => q.name.endsWith(CALLS_QUEUE)).map((q) => [q.name, q.counts.delayed]));
      expect(delayed).toEqual({ calls: 1, 's1-calls': 2, 's2-calls': 3 });
    } finally {
      await Promise.all(queues.map((queue) => queue.obliterate({ force: true }).then(() => queue.close())));
      await server.close();
    }
  });
});

describe.skipIf(!hasRedisCluster)('call shards on a 3-master Redis Cluster: the API finds a call by id', () => {
  let cluster: ClusterTopology;
  let redis: RedisClient;
  let prefix = '';

  beforeAll(async () => {
    cluster = await startClusterTopology();
    // a prefix whose three shards live on three different masters
    for (let i = 0; i < MAX_TAG_TRIES && prefix === ''; i++) {
      const candidate = `{t-shard-api-${randomUUID().slice(0, 8)}}`;
      const ports = await Promise.all(callShards(candidate, SHARDS).prefixes.map((shard) => cluster.portForKey(shard)));
      if (new Set(ports).size === SHARDS) prefix = candidate;
    }
    expect(prefix).not.toBe('');
    const config = loadConfig({ REDIS_CLUSTER_NODES: cluster.nodes, QUEUE_PREFIX: prefix, CALL_SHARDS: String(SHARDS) });
    redis = createProducerConnection(config.redis);
    await waitUntilReady(redis);
  }, 60_000);

  afterAll(async () => {
    if (redis) await closeConnection(redis);
    configureCallShards(prefix, 1);
    await cluster?.close();
  });

  it('finds the campaign of a call with neither an index entry nor a job (one pipeline per shard), and none for an unknown id', async () => {
    const store = new CallStore(redis, prefix, systemClock);
    const calls = new CallQueues(redis, prefix);
    const index = new CallCampaignIndex(redis, prefix, store, calls, systemClock);
    try {
      const campaigns = campaignPerShard('api-scan');
      for (const [n, campaignId] of campaigns.entries()) {
        await store.createCalls(campaignId, [{ callId: `scan-${n}`, phoneNumber: `+1415556782${n}`, metadata: {} }]);
      }
      for (const [n, campaignId] of campaigns.entries()) expect(await index.campaignOf(`scan-${n}`)).toBe(campaignId);
      expect(await index.campaignOf('scan-unknown')).toBeUndefined();
    } finally {
      await calls.close();
    }
  }, 30_000);
});
