/**
 * The Redis the chaos test breaks, in one of three topologies (CHAOS_REDIS_TOPOLOGY, issue 14's proof):
 * - `single` (default): the test's own redis-server (ChaosRedis, AOF on); the freeze SIGSTOPs it, the restart
 *   SIGTERMs it and starts it again on the same port and AOF, as before topologies existed;
 * - `sentinel`: a primary (AOF, `appendfsync everysec`), one replica and three sentinels; every process connects
 *   through the sentinels (REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_DIAL_REPLICA_ACKS=1). The freeze SIGSTOPs the
 *   current primary (shorter than the sentinels' down-after, so it stays a freeze); the restart is a failover: the
 *   primary is SIGKILLed, the sentinels promote the replica, and the old primary comes back (same port and AOF) to
 *   be made a replica of the new one;
 * - `cluster`: three masters (AOF on each), every process given REDIS_CLUSTER_NODES and a hash-tagged QUEUE_PREFIX;
 *   the freeze SIGSTOPs the master holding the prefix's slot, the restart SIGTERMs it and starts it again on the
 *   same port, directory, AOF and nodes.conf.
 */
import { z } from 'zod';
import type { RedisOptions } from 'ioredis';
import { Redis } from 'ioredis';
import { callShards } from '../../src/core/callShards.js';
import { createLogger } from '../../src/core/logger.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { createProducerConnection, createWorkerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { DEFAULT_REDIS_PORT, DEFAULT_SENTINEL_PORT, parseHostPorts, type RedisTarget } from '../../src/core/redisTarget.js';
import { SECOND, sleep } from '../../src/core/time.js';
import { startClusterTopology, startSentinelTopology, type ClusterTopology, type SentinelTopology } from '../helpers/redisTopology.js';
import { ChaosRedis, freePort, type ChildRegistry } from './chaosProcesses.js';

export const chaosTopologyKindSchema = z.enum(['single', 'sentinel', 'cluster']);
export type ChaosTopologyKind = z.infer<typeof chaosTopologyKindSchema>;

const LOOPBACK = '127.0.0.1';
/**
 * The sentinels' down-after-milliseconds in the chaos run: longer than the freeze (REDIS_BLOCK_MS, 6 s), so the
 * freeze stays a frozen primary and only the kill is a failover. Production's default is 30 s.
 */
const SENTINEL_DOWN_AFTER_MS = 10 * SECOND;
/** How long the sentinels get to promote the replica after the kill. */
const FAILOVER_WAIT_MS = 60 * SECOND;
/** On a cluster BullMQ and the dialer need every key in one slot: the prefix carries a hash tag. */
const CLUSTER_PREFIX = '{chaos}';

/** What the restart step did: a line for the timeline and, through Sentinel, how long the failover took. */
export interface RestartReport {
  what: string;
  /** Sentinel: from the SIGKILL until the promoted replica took writes. */
  failoverMs?: number;
  /** Cluster: from the SIGTERM until every node saw the cluster ok again. */
  backMs?: number;
}

/** One topology as the chaos test uses it. */
export interface ChaosTopology {
  readonly kind: ChaosTopologyKind;
  /** QUEUE_PREFIX of every process. */
  readonly prefix: string;
  /** Where Redis is, for every process: REDIS_URL, and REDIS_SENTINELS… or REDIS_CLUSTER_NODES. */
  readonly env: Readonly<Record<string, string>>;
  /** The one node's URL (single), for code that takes only a URL. */
  readonly url: string;
  /** The same place as a RedisTarget, for connections made in the test process. */
  readonly target: RedisTarget;
  /** A connection of the test's own (reader, store); `options` as ioredis takes them. */
  connect(options: RedisOptions): Promise<RedisClient>;
  /** A fail-fast producer connection, ready, for the enqueue (undefined for single: enqueueCalls makes its own). */
  producer(): Promise<RedisClient | undefined>;
  /** The server the freeze stops, in the timeline's words. */
  readonly frozenName: string;
  /** SIGSTOPs the server that holds the dialer's keys for `ms`, then SIGCONT; returns the timeline's words for it. */
  freeze(ms: number): Promise<string>;
  /** What the restart step does, in the timeline's words. */
  readonly restartWords: string;
  /** The restart step (see the file's comment); `downMs`: how long a restarted node stays down. */
  restart(downMs: number): Promise<RestartReport>;
  close(): Promise<void>;
}

/** CHAOS_REDIS_TOPOLOGY (default `single`); a ZodError naming the allowed values otherwise. */
export function chaosTopologyKind(env: NodeJS.ProcessEnv = process.env): ChaosTopologyKind {
  const value = env.CHAOS_REDIS_TOPOLOGY;
  return chaosTopologyKindSchema.parse(value === undefined || value === '' ? 'single' : value);
}

/** Starts the topology's servers; every `redis-server` is registered by PID in `registry`. */
export async function startChaosTopology(
  kind: ChaosTopologyKind,
  registry: ChildRegistry,
  workDir: string,
  prefix: string,
  options: { callShards?: number; campaignId?: string } = {},
): Promise<ChaosTopology> {
  if (kind === 'sentinel') return startSentinel(registry, prefix);
  if (kind === 'cluster') return startCluster(registry, options);
  return startSingle(registry, workDir, prefix);
}

/** The test's own connections log outages at debug only (their polls are retried). */
const quietReporting = { logger: createLogger('warn', 'chaos-test'), level: 'debug' as const };

async function startSingle(registry: ChildRegistry, workDir: string, prefix: string): Promise<ChaosTopology> {
  const redis = new ChaosRedis(registry, await freePort(), workDir);
  await redis.start();
  return {
    kind: 'single',
    prefix,
    env: { REDIS_URL: redis.url },
    url: redis.url,
    target: { kind: 'node', url: redis.url },
    connect: async (options) => new Redis(redis.url, options),
    producer: async () => undefined,
    frozenName: 'redis-server',
    restartWords: 'SIGTERM redis-server',
    freeze: async (ms) => {
      await redis.block(ms);
      return 'redis-server';
    },
    restart: async (downMs) => {
      await redis.restart(downMs);
      return { what: 'redis-server back (same port, same AOF)' };
    },
    close: async () => undefined,
  };
}

async function startSentinel(registry: ChildRegistry, prefix: string): Promise<ChaosTopology> {
  const topology: SentinelTopology = await startSentinelTopology({
    downAfterMs: SENTINEL_DOWN_AFTER_MS,
    onSpawn: (name, child) => registry.add(name, child),
  });
  const firstPrimary = await topology.primaryPort();
  // the sentinels' primary answers; REDIS_URL's host and port are ignored through Sentinel (its credentials are not)
  const url = `redis://${LOOPBACK}:${firstPrimary}`;
  const target: RedisTarget = { kind: 'sentinel', url, sentinels: parseHostPorts(topology.sentinels, 'REDIS_SENTINELS', DEFAULT_SENTINEL_PORT), name: topology.name };
  return {
    kind: 'sentinel',
    prefix,
    env: { REDIS_URL: url, REDIS_SENTINELS: topology.sentinels, REDIS_SENTINEL_NAME: topology.name, REDIS_DIAL_REPLICA_ACKS: '1' },
    url,
    target,
    connect: async (options) => createWorkerConnection(target, options, quietReporting),
    producer: async () => ready(createProducerConnection(target, {}, quietReporting)),
    frozenName: 'the Redis primary',
    restartWords: 'SIGKILL the Redis primary (the sentinels fail over)',
    freeze: async (ms) => {
      const port = await topology.primaryPort();
      topology.freezeNode(port, true);
      try {
        await sleep(ms);
      } finally {
        topology.freezeNode(port, false);
      }
      const after = await topology.primaryPort();
      return after === port ? `the primary (port ${port}); still the primary after` : `the primary (port ${port}); the sentinels moved it to ${after} meanwhile`;
    },
    restart: async () => {
      const started = Date.now();
      const oldPort = await topology.killPrimary();
      const newPort = await topology.waitForFailover(oldPort, FAILOVER_WAIT_MS);
      const failoverMs = Date.now() - started;
      // back as the promoted primary's replica, as Redis' docs advise: restarted as a primary, it takes writes until
      // the sentinels demote it, and drops them then (README "Scaling out": a chaos run lost an agent's outcome so)
      await topology.restartNode(oldPort, { replicaOf: newPort });
      return {
        what: `failover: the replica (port ${newPort}) promoted ${(failoverMs / SECOND).toFixed(1)} s after the primary (port ${oldPort}) was SIGKILLed; the old primary restarted (same port and AOF) as the new primary's replica`,
        failoverMs,
      };
    },
    close: () => topology.close(),
  };
}

/**
 * With `callShards` above 1 (CHAOS_CALL_SHARDS), the campaign's records and dial jobs live in its call shard, on
 * another master than QUEUE_PREFIX's global keys when the slots fall so (they do for the fixed campaign): the freeze
 * then stops the master of the global keys (the DIAL_CPS window, leases, call-results) and the restart the master of
 * the campaign's shard, so each step meets one half of a two-step claim.
 */
async function startCluster(registry: ChildRegistry, options: { callShards?: number; campaignId?: string }): Promise<ChaosTopology> {
  const topology: ClusterTopology = await startClusterTopology({ aof: true, onSpawn: (name, child) => registry.add(name, child) });
  const globalPort = await topology.portForKey(CLUSTER_PREFIX);
  const dataPrefix = options.callShards !== undefined && options.campaignId !== undefined ? callShards(CLUSTER_PREFIX, options.callShards).prefixOf(options.campaignId) : CLUSTER_PREFIX;
  const slotPort = await topology.portForKey(dataPrefix);
  const url = `redis://${LOOPBACK}:${topology.ports[0] ?? slotPort}`;
  const target: RedisTarget = { kind: 'cluster', url, nodes: parseHostPorts(topology.nodes, 'REDIS_CLUSTER_NODES', DEFAULT_REDIS_PORT) };
  return {
    kind: 'cluster',
    prefix: CLUSTER_PREFIX,
    env: { REDIS_URL: url, REDIS_CLUSTER_NODES: topology.nodes },
    url,
    target,
    connect: async (options) => createWorkerConnection(target, options, quietReporting),
    producer: async () => ready(createProducerConnection(target, {}, quietReporting)),
    frozenName: `the master holding ${CLUSTER_PREFIX}'s slot (port ${globalPort})`,
    restartWords: `SIGTERM the master holding ${dataPrefix}'s slot (port ${slotPort})`,
    freeze: async (ms) => {
      topology.freezeNode(globalPort, true);
      try {
        await sleep(ms);
      } finally {
        topology.freezeNode(globalPort, false);
      }
      return `the master holding ${CLUSTER_PREFIX}'s slot (port ${globalPort})`;
    },
    restart: async (downMs) => {
      const started = Date.now();
      await topology.restartNode(slotPort, downMs);
      const backMs = Date.now() - started;
      return { what: `the master holding ${dataPrefix}'s slot (port ${slotPort}) back (same port, dir and AOF), cluster ok ${(backMs / SECOND).toFixed(1)} s after the SIGTERM`, backMs };
    },
    close: () => topology.close(),
  };
}

async function ready(connection: RedisClient): Promise<RedisClient> {
  await waitUntilReady(connection);
  return connection;
}
