import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { hasRedisCluster, startClusterTopology, type ClusterTopology } from '../helpers/redisTopology.js';
import { runCli } from '../helpers/runCli.js';
import { testRedisUrl } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

/** Issue 14: every process runs on a Redis Cluster, with the hash-tagged prefix's slot on any node. */


const CAMPAIGN = 'cluster';
const CALLS = 30;
const RING_MS = 200;
/** Tags tried to find one whose slot another master than the first seed serves (each has a 2/3 chance). */
const MAX_TAG_TRIES = 50;
const CAMPAIGN_TIMEOUT_MS = 60_000;

describe('configuration', () => {
  it('refuses a cluster without a hash-tagged QUEUE_PREFIX and says what to set', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: 'bull' })).toThrow(
      'QUEUE_PREFIX: on Redis Cluster it must carry a non-empty hash tag such as {bull}',
    );
    // an empty tag hashes the whole key (cluster.c keyHashSlot): the advice is a tag with the prefix's text in it
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: '{}x' })).toThrow('such as {x}, so each');
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: '{}' })).toThrow('such as {dialer}, so each');
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_SENTINELS: '127.0.0.1:26379', QUEUE_PREFIX: '{bull}' })).toThrow(
      'set one of them, not both',
    );
    expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2', QUEUE_PREFIX: '{dialer}' }).redis).toEqual({
      kind: 'cluster',
      url: 'redis://127.0.0.1:6379',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 6379 },
      ],
    });
  });
});

describe.skipIf(!hasRedisCluster)('a campaign on a 3-master Redis Cluster', () => {
  let cluster: ClusterTopology;
  let p: TestPipeline;
  let prefix = '';
  let env: Record<string, string> = {};

  beforeAll(async () => {
    cluster = await startClusterTopology();
    // a prefix whose slot lives on a node other than the first seed: every command must follow MOVED there
    for (let i = 0; i < MAX_TAG_TRIES && prefix === ''; i++) {
      const candidate = `{t-cluster-${randomUUID().slice(0, 8)}}`;
      if ((await cluster.portForKey(candidate)) !== cluster.ports[0]) prefix = candidate;
    }
    expect(prefix).not.toBe('');
    env = { REDIS_CLUSTER_NODES: cluster.nodes.split(',')[0] ?? '', QUEUE_PREFIX: prefix, DIAL_CPS: '20' };
    p = await startTestPipeline('cluster', { network: { default: { type: 'decline', afterMs: RING_MS } }, env });
  }, 60_000);

  afterAll(async () => {
    await p?.close().catch(() => undefined); // the cluster's teardown below frees what this could not
    await cluster?.close();
  });

  it('dials every number once and ends every call with one outcome, seeded with one node only', async () => {
    const numbers = new Set<string>();
    for (let i = 0; i < CALLS; i++) {
      const number = `+1415555${String(7100 + i).padStart(4, '0')}`;
      numbers.add(number);
      await p.enqueue({ phoneNumber: number, campaignId: CAMPAIGN });
    }
    const counters = await waitFor(
      async () => {
        const c = await p.store.counters(CAMPAIGN);
        return c.terminal >= CALLS ? c : undefined;
      },
      CAMPAIGN_TIMEOUT_MS,
      'every call to end',
    );
    expect(counters).toEqual({ total: CALLS, terminal: CALLS, undialed: 0, byOutcome: { declined: CALLS } });
    const dials = p.sim.calls.filter((c) => numbers.has(c.phoneNumber));
    expect(dials).toHaveLength(CALLS);
    expect(new Set(dials.map((c) => c.phoneNumber)).size).toBe(CALLS);

    // the data lives on the cluster node serving the prefix's slot, and nothing went to the single test Redis
    expect(p.redis).toBeInstanceOf(Cluster);
    const countKeys = async (redis: Redis) => {
      const [, keys] = await redis.scan('0', 'MATCH', `${prefix}:*`, 'COUNT', 100_000);
      return keys.length;
    };
    const slotNode = new Redis({ host: '127.0.0.1', port: await cluster.portForKey(prefix), lazyConnect: true });
    const single = new Redis(testRedisUrl(), { lazyConnect: true });
    try {
      expect(await countKeys(slotNode)).toBeGreaterThan(CALLS);
      expect(await countKeys(single)).toBe(0);
    } finally {
      slotNode.disconnect();
      single.disconnect();
    }
  }, 90_000);

  it('runs the command line there too: enqueue, then report reads the call back', async () => {
    const cliEnv = { ...p.env, ...env };
    const enqueue = await runCli(['enqueue', '+14155557199', '--campaign', 'cluster-cli', '--delay', '1h'], cliEnv);
    expect(enqueue).toMatchObject({ code: 0 });
    const report = await runCli(['report', '--campaign', 'cluster-cli', '--json'], cliEnv);
    expect(report.code).toBe(0);
    expect(report.stdout).toContain('+14155557199');
  }, 60_000);
});
