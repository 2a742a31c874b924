import type { ChildProcess } from 'node:child_process';
import { findOrStartRedis } from '../../src/core/localRedis.js';
import { startRedisContainer } from './redisContainer.js';
import { startClusterTopology, startSentinelTopology } from './redisTopology.js';
import { TEST_REDIS_ENV, testRedisTopology } from './testRedis.js';

/**
 * The sentinels' down-after-milliseconds for a whole test run through Sentinel: the run has no failover of its own,
 * and a primary busy for a second on a loaded machine must not be failed over under the tests (the failover tests
 * start their own topology).
 */
const RUN_SENTINEL_DOWN_AFTER_MS = 30_000;

let stop: (() => Promise<void>) | undefined;
/** Every redis-server the run started, SIGKILLed by PID if the run's process exits without teardown. */
const spawned = new Set<ChildProcess>();
const killSpawned = () => {
  for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
};

/**
 * Picks one Redis for the whole run and hands it to every test file through the environment (TEST_REDIS_URL, and
 * for TEST_REDIS_TOPOLOGY=cluster|sentinel the variables of TEST_REDIS_ENV; testRedis.ts reads them):
 * - `single` (default): REDIS_URL's server, the default one, a container or a redis-server (findOrStartRedis);
 * - `cluster`: three masters, `redis-server` on free loopback ports, made a cluster by `redis-cli --cluster create`;
 * - `sentinel`: a primary (AOF, appendfsync everysec), one replica and three sentinels, on free loopback ports.
 * Topologies start within redisTopology's bounded waits (20 s per step) and stop by PID at teardown.
 */
export async function setup(): Promise<void> {
  const kind = testRedisTopology();
  const onSpawn = (_name: string, child: ChildProcess) => {
    spawned.add(child);
    child.once('exit', () => spawned.delete(child));
  };
  if (kind !== 'single') process.once('exit', killSpawned);
  if (kind === 'cluster') {
    const cluster = await startClusterTopology({ onSpawn });
    process.env[TEST_REDIS_ENV.url] = `redis://127.0.0.1:${cluster.ports[0] ?? 0}`;
    process.env[TEST_REDIS_ENV.clusterNodes] = cluster.nodes;
    stop = () => cluster.close();
    return;
  }
  if (kind === 'sentinel') {
    const sentinel = await startSentinelTopology({ onSpawn, downAfterMs: RUN_SENTINEL_DOWN_AFTER_MS });
    process.env[TEST_REDIS_ENV.url] = `redis://127.0.0.1:${await sentinel.primaryPort()}`;
    process.env[TEST_REDIS_ENV.sentinels] = sentinel.sentinels;
    process.env[TEST_REDIS_ENV.sentinelName] = sentinel.name;
    stop = () => sentinel.close();
    return;
  }
  const provided = await findOrStartRedis({ docker: startRedisContainer });
  process.env[TEST_REDIS_ENV.url] = provided.url;
  stop = () => provided.stop();
}

export async function teardown(): Promise<void> {
  await stop?.();
  killSpawned();
  process.off('exit', killSpawned);
}
