/**
 * What call shards buy on a Redis Cluster (issue 14): the same campaigns enqueued and dialed to their outcomes on a
 * 3-master cluster of the bench's own, once with one shard (everything in QUEUE_PREFIX's slot, on one master) and once
 * with CALL_SHARDS=3 (a prefix whose three shards live on the three masters), side by side in one run. Each master's
 * main-thread CPU per call is read from INFO cpu; a cluster goes as far as its busiest master, so its ceiling is
 * 1 s of one core / the busiest master's CPU per call. What stays global (the DIAL_CPS window, the leases, the
 * `call-results` queue) stays on QUEUE_PREFIX's master, which is why the spread is not an even third.
 *
 *   npm run bench:shards                    # 1,500 calls over 30 campaigns, each layout
 *   BENCH_CALLS=3000 npm run bench:shards
 */
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { callShards } from '../src/core/callShards.js';
import { loadConfig } from '../src/core/config.js';
import { CallStore } from '../src/core/callStore.js';
import { createLogger } from '../src/core/logger.js';
import { closeConnection, createWorkerConnection } from '../src/core/redisConnection.js';
import { systemClock } from '../src/core/time.js';
import { startDialWorker } from '../src/consumer/dialWorker.js';
import { enqueueCalls, type CallRequest } from '../src/producer/enqueueCalls.js';
import { startResultsWorker } from '../src/results/resultsWorker.js';
import { startLiveKitSim } from '../src/sim/index.js';
import { startClusterTopology, type ClusterTopology } from '../test/helpers/redisTopology.js';
import { redisMainThreadCpuS, simDialerEnv, until } from './redisBench.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 1500);
const CAMPAIGNS = 30;
const SHARDS = 3;
/** Fast enough that Redis, not the limiter, is what the run measures. */
const DIAL_CPS = 500;
const DIAL_CONCURRENCY = 50;
const RING_MS = 20;
const MAX_TAG_TRIES = 200;
const MICROS_PER_SECOND = 1_000_000;
/** Commands listed for the busiest master. */
const TOP_COMMANDS = 8;

/** Per command of a node: calls and µs so far (INFO commandstats; `cmdstat_evalsha:calls=…,usec=…`). */
async function commandStats(port: number): Promise<Map<string, { calls: number; usec: number }>> {
  const node = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await node.connect();
    const stats = new Map<string, { calls: number; usec: number }>();
    for (const m of (await node.info('commandstats')).matchAll(/cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)/g)) {
      stats.set(m[1] ?? '?', { calls: Number(m[2]), usec: Number(m[3]) });
    }
    return stats;
  } finally {
    node.disconnect();
  }
}

/** CPU seconds a node's main thread has used so far (INFO cpu). */
async function mainThreadCpuS(port: number): Promise<number> {
  const node = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await node.connect();
    return await redisMainThreadCpuS(node);
  } finally {
    node.disconnect();
  }
}

const cpuOfAll = (cluster: ClusterTopology) => Promise.all(cluster.ports.map(mainThreadCpuS));

/** A hash-tagged prefix whose `shards` shards live on `shards` different masters (or any, for one shard). */
async function spreadPrefix(cluster: ClusterTopology, shards: number): Promise<string> {
  for (let i = 0; i < MAX_TAG_TRIES; i++) {
    const candidate = `{bench-shards-${randomUUID().slice(0, 8)}}`;
    const ports = await Promise.all(callShards(candidate, shards).prefixes.map((p) => cluster.portForKey(p)));
    if (new Set(ports).size === shards) return candidate;
  }
  throw new Error(`no prefix found whose ${shards} shards live on ${shards} masters`);
}

/** Enqueues and dials CALLS calls over CAMPAIGNS campaigns with `shards` shards; each master's main-thread CPU per call (µs). */
async function run(cluster: ClusterTopology, shards: number): Promise<{ perNodeUs: number[]; seconds: number; busiestCommands: string }> {
  const sim = await startLiveKitSim({ network: { default: { type: 'decline', afterMs: RING_MS } } });
  const prefix = await spreadPrefix(cluster, shards);
  const config = loadConfig({
    REDIS_CLUSTER_NODES: cluster.nodes,
    QUEUE_PREFIX: prefix,
    CALL_SHARDS: String(shards),
    ...simDialerEnv(sim, DIAL_CPS, DIAL_CONCURRENCY),
  });
  const logger = createLogger('silent');
  const redis = createWorkerConnection(config.redis, {}, { logger });
  const store = new CallStore(redis, prefix, systemClock);
  const campaigns = Array.from({ length: CAMPAIGNS }, (_, i) => `campaign-${i}`);
  try {
    const before = await cpuOfAll(cluster);
    const statsBefore = await Promise.all(cluster.ports.map(commandStats));
    const started = Date.now();
    const requests: CallRequest[] = Array.from({ length: CALLS }, (_, i) => ({ phoneNumber: `+1415${3_000_000 + i}`, campaignId: campaigns[i % CAMPAIGNS] ?? 'campaign-0' }));
    await enqueueCalls(requests, { connection: redis, prefix, maxAttempts: 1 });
    const results = await startResultsWorker({ config, logger });
    const dialer = await startDialWorker({ config, logger });
    const ended = async () => (await Promise.all(campaigns.map((c) => store.counters(c)))).reduce((sum, c) => sum + c.terminal, 0);
    await until(async () => (await ended()) >= CALLS, 'every call to end');
    const seconds = (Date.now() - started) / 1000;
    const after = await cpuOfAll(cluster);
    const statsAfter = await Promise.all(cluster.ports.map(commandStats));
    await dialer.close(true);
    await results.close();
    const perNodeUs = after.map((cpu, i) => ((cpu - (before[i] ?? 0)) / CALLS) * MICROS_PER_SECOND);
    // what the busiest master spends its time on, per call: the commands with the most µs
    const busiest = perNodeUs.indexOf(Math.max(...perNodeUs));
    const was = statsBefore[busiest] ?? new Map<string, { calls: number; usec: number }>();
    const top = [...(statsAfter[busiest] ?? new Map<string, { calls: number; usec: number }>())]
      .map(([name, now]) => ({ name, calls: (now.calls - (was.get(name)?.calls ?? 0)) / CALLS, usec: (now.usec - (was.get(name)?.usec ?? 0)) / CALLS }))
      .sort((a, b) => b.usec - a.usec)
      .slice(0, TOP_COMMANDS)
      .map((c) => `${c.name} ${c.calls.toFixed(1)}×/${c.usec.toFixed(0)} µs`)
      .join(', ');
    return { perNodeUs, seconds, busiestCommands: top };
  } finally {
    await closeConnection(redis);
    await sim.close();
  }
}

async function main(): Promise<void> {
  const cluster = await startClusterTopology();
  try {
    const one = await run(cluster, 1);
    const spread = await run(cluster, SHARDS);
    const busiest = (us: number[]) => Math.max(...us);
    const line = (name: string, r: { perNodeUs: number[]; seconds: number; busiestCommands: string }) => {
      const total = r.perNodeUs.reduce((a, b) => a + b, 0);
      const nodes = r.perNodeUs.map((us) => `${us.toFixed(0)}`).join(' / ');
      const ceiling = Math.round(MICROS_PER_SECOND / busiest(r.perNodeUs));
      console.log(`  ${name}: per master ${nodes} µs (sum ${total.toFixed(0)}), busiest ${busiest(r.perNodeUs).toFixed(0)} µs → ${ceiling} calls/s; this run ${(CALLS / r.seconds).toFixed(0)} calls/s`);
      console.log(`    busiest master, per call: ${r.busiestCommands}`);
    };
    console.log(`shards: calls=${CALLS} campaigns=${CAMPAIGNS} masters=${cluster.ports.length} load=${loadavg()[0]?.toFixed(1) ?? '?'} (Redis main-thread CPU per call enqueued and dialed to its outcome)`);
    line('CALL_SHARDS=1', one);
    line(`CALL_SHARDS=${SHARDS}`, spread);
    console.log(`  ceiling ratio (${SHARDS} shards / 1): ${(busiest(one.perNodeUs) / busiest(spread.perNodeUs)).toFixed(2)}`);
  } finally {
    await cluster.close();
  }
}

await main();
