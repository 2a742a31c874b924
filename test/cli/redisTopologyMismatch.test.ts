/**
 * A Redis that answers but is not the topology the settings describe is a wrong setting (exit 2, naming the one to
 * change), not a bug (exit 1) nor an unreachable Redis (exit 4). A fresh tester of issue 14 found:
 * - REDIS_URL on a node of a Redis Cluster, without REDIS_CLUSTER_NODES: every command printed
 *   `dialer: MOVED 9263 127.0.0.1:17002` and exited 1 (the issue's own symptom, with no hint of the setting);
 * - REDIS_CLUSTER_NODES on a Redis without cluster mode: `cannot reach Redis … (Failed to refresh slots cache.)`,
 *   exit 4, though that Redis answered (it refuses CLUSTER SLOTS).
 */
import { randomUUID } from 'node:crypto';
import { URL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_INVALID_INPUT } from '../../src/cli/exitCodes.js';
import { hasRedisCluster, startClusterTopology, type ClusterTopology } from '../helpers/redisTopology.js';
import { runCliInProcess } from '../helpers/runCli.js';
import { testRedisTopology, testRedisUrl } from '../helpers/testRedis.js';

const CLUSTER_START_MS = 60_000;
/** Random hash tags tried for one whose slot is not on the node REDIS_URL names (two in three are not). */
const MAX_TAG_TRIES = 50;

describe.skipIf(!hasRedisCluster)('REDIS_URL on a node of a Redis Cluster', () => {
  let cluster: ClusterTopology;
  let node = '';
  let prefix = '';

  beforeAll(async () => {
    cluster = await startClusterTopology();
    const port = cluster.ports[0] ?? 0;
    node = `127.0.0.1:${port}`;
    for (let i = 0; i < MAX_TAG_TRIES && prefix === ''; i++) {
      const candidate = `{t-mismatch-${randomUUID().slice(0, 8)}}`;
      if ((await cluster.portForKey(candidate)) !== port) prefix = candidate;
    }
    expect(prefix).not.toBe('');
  }, CLUSTER_START_MS);

  afterAll(async () => {
    await cluster?.close();
  });

  it.each([[['campaigns']], [['enqueue', '+14155550100', '--campaign', 'mismatch']]])(
    '%o exits 2 naming REDIS_CLUSTER_NODES, not 1 with a bare MOVED',
    async (args) => {
      const run = await runCliInProcess(args, { REDIS_URL: `redis://${node}`, QUEUE_PREFIX: prefix });
      expect(run.stderr).toMatch(
        new RegExp(`^dialer: REDIS_CLUSTER_NODES: the Redis at ${node.replace(/\./g, '\\.')} is a node of a Redis Cluster \\(it answered "MOVED \\d+ 127\\.0\\.0\\.1:\\d+"\\): set REDIS_CLUSTER_NODES to its nodes`),
      );
      expect(run.code).toBe(EXIT_INVALID_INPUT);
    },
  );

  it('with REDIS_CLUSTER_NODES set, the same command works', async () => {
    const run = await runCliInProcess(['campaigns'], { REDIS_CLUSTER_NODES: node, QUEUE_PREFIX: prefix });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });
});

// the run's Redis is a plain node unless the run is on a cluster
describe.skipIf(testRedisTopology() === 'cluster')('REDIS_CLUSTER_NODES on a Redis without cluster mode', () => {
  it('exits 2 naming REDIS_CLUSTER_NODES and the reply, not 4 as if nothing answered', async () => {
    const seed = new URL(testRedisUrl()).host;
    const run = await runCliInProcess(['campaigns'], { REDIS_CLUSTER_NODES: seed, QUEUE_PREFIX: '{t-mismatch}' });
    expect(run.stderr).toBe(
      `dialer: REDIS_CLUSTER_NODES: the Redis at ${seed} runs without cluster mode (ERR This instance has cluster support disabled): ` +
        'unset REDIS_CLUSTER_NODES and set REDIS_URL to it, or list the nodes of a Redis Cluster\n',
    );
    expect(run.code).toBe(EXIT_INVALID_INPUT);
  });
});
