/**
 * How far one Redis node goes (issue 14): Redis' main-thread CPU per call, for enqueueing a call and for dialing it to
 * its outcome, measured on a redis-server of the bench's own (nothing else uses it), so the ceiling of one node is
 * 1 s / (CPU per call). One core of Redis' main thread is what a node has: past that, sharding across cluster nodes
 * pays; below it, it does not. Side by side: raw BullMQ's cost of one job added and processed by an empty worker.
 *
 *   npm run bench:redis                     # 2,000 calls dialed through the simulator (decline after 20 ms)
 *   BENCH_CALLS=5000 npm run bench:redis
 */
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/core/config.js';
import { dialerKeys } from '../src/core/keys.js';
import { startRedisServer } from '../src/core/localRedis.js';
import { createLogger } from '../src/core/logger.js';
import { startDialWorker } from '../src/consumer/dialWorker.js';
import { enqueueCalls, type CallRequest } from '../src/producer/enqueueCalls.js';
import { startResultsWorker } from '../src/results/resultsWorker.js';
import { startLiveKitSim } from '../src/sim/index.js';
import { redisMainThreadCpuS, simDialerEnv, until } from './redisBench.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 2000);
const CAMPAIGN = 'ceiling';
/** Fast enough that Redis, not the limiter, is what the run measures. */
const DIAL_CPS = 500;
const DIAL_CONCURRENCY = 50;
const RING_MS = 20;
const MICROS_PER_SECOND = 1_000_000;

async function main(): Promise<void> {
  const server = await startRedisServer();
  const redis = new Redis(server.url);
  const sim = await startLiveKitSim({ network: { default: { type: 'decline', afterMs: RING_MS } } });
  const prefix = `bench-ceiling-${randomUUID().slice(0, 8)}`;
  const config = loadConfig({
    REDIS_URL: server.url,
    QUEUE_PREFIX: prefix,
    ...simDialerEnv(sim, DIAL_CPS, DIAL_CONCURRENCY),
  });
  const logger = createLogger('silent');
  try {
    // 1. raw BullMQ: add CALLS jobs and process them with an empty worker
    const rawQueue = new Queue('raw', { connection: redis, prefix });
    const cpu0 = await redisMainThreadCpuS(redis);
    await rawQueue.addBulk(Array.from({ length: CALLS }, (_, i) => ({ name: 'j', data: { i }, opts: { removeOnComplete: true } })));
    const cpuRawAdd = await redisMainThreadCpuS(redis);
    let processed = 0;
    const workerConnection = redis.duplicate({ maxRetriesPerRequest: null });
    const rawWorker = new Worker('raw', async () => void (processed += 1), { connection: workerConnection, prefix, concurrency: DIAL_CONCURRENCY });
    await until(async () => processed >= CALLS, 'raw jobs');
    const cpuRawDone = await redisMainThreadCpuS(redis);
    await rawWorker.close();
    workerConnection.disconnect(); // a connection handed to BullMQ stays the caller's to close
    await rawQueue.close();

    // 2. ours: enqueue (records, idempotency, jobs), then dial each to its outcome (consumer + results worker)
    const requests: CallRequest[] = Array.from({ length: CALLS }, (_, i) => ({ phoneNumber: `+1415${3_000_000 + i}`, campaignId: CAMPAIGN }));
    const cpu1 = await redisMainThreadCpuS(redis);
    await enqueueCalls(requests, { connection: redis, prefix, maxAttempts: 1 });
    const cpuEnqueued = await redisMainThreadCpuS(redis);
    const started = Date.now();
    const results = await startResultsWorker({ config, logger });
    const dialer = await startDialWorker({ config, logger });
    const counters = dialerKeys(prefix).campaignCounters(CAMPAIGN);
    await until(async () => Number(await redis.hget(counters, 'terminal')) >= CALLS, 'every call to end');
    const cpuDialed = await redisMainThreadCpuS(redis);
    const seconds = (Date.now() - started) / 1000;
    await dialer.close(true);
    await results.close();

    const perCall = (cpuS: number) => (cpuS / CALLS) * MICROS_PER_SECOND;
    const ceiling = (us: number) => Math.round(MICROS_PER_SECOND / us);
    const rawUs = perCall(cpuRawAdd - cpu0) + perCall(cpuRawDone - cpuRawAdd);
    const enqueueUs = perCall(cpuEnqueued - cpu1);
    const dialUs = perCall(cpuDialed - cpuEnqueued);
    const load = loadavg()[0]?.toFixed(1) ?? '?';
    console.log(`redis ceiling: calls=${CALLS} load=${load} (Redis main-thread CPU per call; ceiling = 1 s of one core / that)`);
    console.log(`  raw BullMQ job added + processed: ${rawUs.toFixed(1)} µs  → ${ceiling(rawUs)} jobs/s`);
    console.log(`  ours, enqueue:                    ${enqueueUs.toFixed(1)} µs  → ${ceiling(enqueueUs)} calls/s`);
    console.log(`  ours, dial to outcome:            ${dialUs.toFixed(1)} µs  → ${ceiling(dialUs)} calls/s (this run: ${(CALLS / seconds).toFixed(0)} calls/s at DIAL_CPS=${DIAL_CPS})`);
    console.log(`  ours, enqueue + dial:             ${(enqueueUs + dialUs).toFixed(1)} µs  → ${ceiling(enqueueUs + dialUs)} calls/s per node`);
  } finally {
    await sim.close();
    redis.disconnect();
    await server.stop();
  }
}

await main();
