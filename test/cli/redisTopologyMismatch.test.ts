/**
 * A Redis that answers but is not the topology the settings describe is a wrong setting (exit 2, naming the one to
 * change), not a bug (exit 1) nor an unreachable Redis (exit 4). A fresh tester of issue 14 found:
 * - REDIS_URL on a node of a Redis Cluster, without REDIS_CLUSTER_NODES: every command printed
 *   `dialer: MOVED 9263 127.0.0.1:17002` and exited 1 (the issue's own symptom, with no hint of the setting);
 * - REDIS_CLUSTER_NODES on a Redis without cluster mode: `cannot reach Redis … (Failed to refresh slots cache.)`,
 *   exit 4, though that Redis answered (it refuses CLUSTER SLOTS); REDIS_SENTINELS at a plain Redis: `cannot reach
 *   Redis … (no sentinel answered; last error: ERR unknown command 'sentinel' …)`, exit 4, though it answered.
 * - `serve` with REDIS_URL on a cluster node printed the bare MOVED and exited 1; `agent start` logged "CALL_SHARDS
 *   could not be checked at start" and ran on, its outcomes bound for a slot it could not write.
 */
import { randomUUID } from 'node:crypto';
import { URL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCallShards } from '../../src/agent/callShardsCheck.js';
import { EXIT_INVALID_INPUT } from '../../src/cli/exitCodes.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { createWorkerConnection } from '../../src/core/redisConnection.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { hasRedisCluster, startClusterTopology, type ClusterTopology } from '../helpers/redisTopology.js';
import { runCliInProcess, startCli } from '../helpers/runCli.js';
import { runAgentStartUntilExit } from '../helpers/agentStart.js';
import { testRedisTopology, testRedisUrl } from '../helpers/testRedis.js';

const CLUSTER_START_MS = 60_000;
/** Random hash tags tried for one whose slot is not on the node REDIS_URL names (two in three are not). */
const MAX_TAG_TRIES = 50;
/** How long `serve` or `agent start` may run before the test stops it: each should exit 2 at once. */
const UNCHECKED_PROCESS_STOP_MS = 20_000;
/** How long the agent's late CALL_SHARDS check may take to drain the worker once Redis answers. */
const LATE_CHECK_WAIT_MS = 10_000;
/** The line every process prints for REDIS_URL on `node`, a node of a Redis Cluster. */
function movedLine(node: string): RegExp {
  return new RegExp(`REDIS_CLUSTER_NODES: the Redis at ${node.replace(/\./g, '\\.')} is a node of a Redis Cluster \\(it answered "MOVED \\d+ 127\\.0\\.0\\.1:\\d+"\\): set REDIS_CLUSTER_NODES to its nodes`);
}

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
      expect(run.stderr).toMatch(new RegExp(`^dialer: ${movedLine(node).source}`));
      expect(run.code).toBe(EXIT_INVALID_INPUT);
    },
  );

  it('`serve` exits 2 with the same line, not 1 with a bare MOVED', { timeout: 2 * UNCHECKED_PROCESS_STOP_MS }, async () => {
    const { child, done } = startCli(['serve'], { REDIS_URL: `redis://${node}`, QUEUE_PREFIX: prefix, API_TOKENS: randomUUID(), API_PORT: '0', LOG_LEVEL: 'error' });
    const stop = setTimeout(() => child.kill('SIGKILL'), UNCHECKED_PROCESS_STOP_MS);
    const run = await done;
    clearTimeout(stop);
    expect(run.stderr).toMatch(new RegExp(`^dialer: ${movedLine(node).source}`));
    expect(run.code).toBe(EXIT_INVALID_INPUT);
  });

  it('`agent start` exits 2 with the same line before registering, instead of running on', { timeout: 2 * UNCHECKED_PROCESS_STOP_MS }, async () => {
    const env = {
      ...process.env,
      REDIS_URL: `redis://${node}`,
      QUEUE_PREFIX: prefix,
      LIVEKIT_URL: 'http://127.0.0.1:9',
      LIVEKIT_API_KEY: 'devkey',
      LIVEKIT_API_SECRET: 'secret',
      OPENAI_API_KEY: 'test-key',
      LOG_LEVEL: 'error',
    };
    const { code, stderr } = await runAgentStartUntilExit(env, UNCHECKED_PROCESS_STOP_MS);
    expect(stderr).toMatch(new RegExp(`^agent: ${movedLine(node).source}`, 'm'));
    expect(code, stderr).toBe(EXIT_INVALID_INPUT);
  });

  it('an agent that met Redis only after start drains when it finds REDIS_URL on a cluster node, instead of running on', async () => {
    const config = loadConfig({ REDIS_URL: `redis://${node}`, QUEUE_PREFIX: prefix });
    const connection = createWorkerConnection(config.redis, { lazyConnect: true }, { name: 'test', logger: createLogger('silent') });
    try {
      const { logger, linesWith } = memoryLogger();
      let drain: () => void = () => undefined;
      const drained = new Promise<void>((resolve, reject) => {
        drain = resolve;
        setTimeout(() => reject(new Error('not drained')), LATE_CHECK_WAIT_MS).unref();
      });
      await checkCallShards(connection, config, logger, { drain, waitMs: 50 });
      await connection.connect();
      await drained;
      expect(linesWith('draining this worker')).toEqual([expect.objectContaining({ err: expect.stringMatching(movedLine(node)) })]);
    } finally {
      connection.disconnect();
    }
  });

  it('with REDIS_CLUSTER_NODES set, the same command works', async () => {
    const run = await runCliInProcess(['campaigns'], { REDIS_CLUSTER_NODES: node, QUEUE_PREFIX: prefix });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });
});

// the run's Redis is a plain node unless the run is on a cluster
describe.skipIf(testRedisTopology() === 'cluster')('REDIS_CLUSTER_NODES or REDIS_SENTINELS on a plain Redis', () => {
  it('exits 2 naming REDIS_CLUSTER_NODES and the reply, not 4 as if nothing answered', async () => {
    const seed = new URL(testRedisUrl()).host;
    const run = await runCliInProcess(['campaigns'], { REDIS_CLUSTER_NODES: seed, QUEUE_PREFIX: '{t-mismatch}' });
    expect(run.stderr).toBe(
      `dialer: REDIS_CLUSTER_NODES: the Redis at ${seed} runs without cluster mode (ERR This instance has cluster support disabled): ` +
        'unset REDIS_CLUSTER_NODES and set REDIS_URL to it, or list the nodes of a Redis Cluster\n',
    );
    expect(run.code).toBe(EXIT_INVALID_INPUT);
  });

  it('REDIS_SENTINELS at it exits 2 naming REDIS_SENTINELS and its reply, not 4 as if no sentinel were there', async () => {
    const seed = new URL(testRedisUrl()).host;
    const run = await runCliInProcess(['campaigns'], { REDIS_SENTINELS: seed, QUEUE_PREFIX: 't-mismatch' });
    expect(run.stderr).toMatch(
      new RegExp(
        `^dialer: REDIS_SENTINELS: no sentinel answered at ${seed.replace(/\./g, '\\.')}, and a Redis there is not a sentinel \\(it answered "ERR unknown command 'sentinel'[^"]*"\\): ` +
          "list the sentinels' addresses \\(port 26379 unless set otherwise\\), or unset REDIS_SENTINELS and set REDIS_URL to that Redis\n$",
      ),
    );
    expect(run.code).toBe(EXIT_INVALID_INPUT);
  });
});
