import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashTag } from '../../src/core/redisTarget.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { testRedisTopology, testRedisUrl } from '../helpers/testRedis.js';

/**
 * The dial pipeline's tests (npm run test:pipeline[:cluster|:sentinel]) run in the topology TEST_REDIS_TOPOLOGY names,
 * not on one node by accident: the pipeline's settings, its connection and where its keys land say which.
 */

const campaignId = 'topology';
const topology = testRedisTopology();
let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline('topology', { network: { default: { type: 'decline', afterMs: 20 } } });
});

afterAll(async () => {
  await p.close();
});

describe(`the test pipeline on the run's Redis (TEST_REDIS_TOPOLOGY=${topology})`, () => {
  it('connects every part through the topology and ends a call there', async () => {
    const expectedKind = { single: 'node', cluster: 'cluster', sentinel: 'sentinel' } as const;
    expect(p.config.redis.kind).toBe(expectedKind[topology]);
    const callId = await p.enqueue({ phoneNumber: '+14155550990', campaignId });
    expect(await p.waitForOutcome(campaignId, callId)).toMatchObject({ outcome: 'declined', attempts: 1 });
    const record = p.store.keys.callRecord(campaignId, callId);

    if (topology === 'cluster') {
      // a Cluster client, a hash-tagged prefix, and the record on the master serving that tag's slot only
      expect(p.redis).toBeInstanceOf(Cluster);
      expect(hashTag(p.config.queuePrefix)).toBeDefined();
      const cluster = p.redis as Cluster;
      const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', record));
      // the prefix's own tag, or its call shard's (TEST_CALL_SHARDS)
      expect(slot).toBe(Number(await cluster.call('CLUSTER', 'KEYSLOT', `${p.config.callShards.prefixOf(campaignId)}:x`)));
      let holders = 0;
      for (const node of cluster.nodes('master')) if (Number(await node.call('CLUSTER', 'COUNTKEYSINSLOT', slot)) > 0) holders += 1;
      expect(holders).toBe(1);
      expect(await cluster.exists(record)).toBe(1);
    } else {
      expect(p.redis).toBeInstanceOf(Redis);
      const role = await (p.redis as Redis).call('ROLE');
      expect(Array.isArray(role) ? role[0] : role).toBe('master');
      expect(await p.redis.exists(record)).toBe(1);
      if (topology === 'sentinel') {
        // the primary was found through the sentinels
        expect((p.redis as Redis).options.sentinels?.length).toBe(3);
        expect(p.env.REDIS_SENTINELS).toBeDefined();
      } else {
        expect(testRedisUrl()).toBe(p.env.REDIS_URL);
      }
    }
  });
});
