/**
 * Enqueue throughput: our `enqueueCalls` (validation, E.164 normalisation, call records, idempotency keys)
 * against raw BullMQ `queue.addBulk` with the same payloads and job options, already built, in chunks of 1,000 added one
 * after another (its best case), side by side in one run, rounds alternating which goes first.
 * Goals (issue 13): ours ≥ 1.0 × raw on a quiet machine, ≥ 0.9 × raw while other processes load every core. Each
 * round also prints the CPU each side cost per call, in this process and in Redis (its main thread, from INFO cpu:
 * other clients of a shared Redis add to it). Redis: REDIS_URL, else 127.0.0.1:6379, else a redis-server started for
 * the run.
 *
 *   npm run bench:enqueue                     # 100,000 calls, 3 alternating rounds
 *   BENCH_CALLS=20000 BENCH_ROUNDS=2 npm run bench:enqueue
 *   BENCH_HOGS=2 npm run bench:enqueue        # under load: two busy-looping processes run beside it (one per core here)
 */
import { redisMainThreadCpuS } from './redisBench.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { findOrStartRedis } from '../src/core/localRedis.js';
import { CALLS_QUEUE, type CallJob } from '../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../src/core/redisConnection.js';
import { ENQUEUE_CHUNK_SIZE, enqueueCalls, jobOptions, type CallRequest } from '../src/producer/enqueueCalls.js';
import { keyedCallId } from '../src/producer/callIds.js';
import { deleteKeysWithPrefix } from '../test/helpers/testRedis.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MAX_ATTEMPTS = 3;
const CAMPAIGN = 'bench';
/** Raw addBulk's chunk, one at a time: its best case here (smaller chunks cost it round trips). */
const RAW_CHUNK_SIZE = 1000;
/** Issue 13: at least raw's throughput quiet, 0.9 of it under load. */
const GOAL_QUIET = 1.0;
const GOAL_LOADED = 0.9;
/** Busy-looping processes started beside the bench (BENCH_HOGS), to measure under load. */
const HOGS = Number(process.env.BENCH_HOGS ?? 0);

/** Valid, distinct US numbers (+1 415 2xx xxxx) with a couple of metadata fields, like a CSV import. */
function requests(n: number): CallRequest[] {
  return Array.from({ length: n }, (_, i) => ({
    phoneNumber: `+1415${2_000_000 + i}`,
    campaignId: CAMPAIGN,
    key: `row-${i}`,
    metadata: { first_name: 'Ada', account: `acct-${i}` },
  }));
}

/** The jobs `enqueueCalls` would add for the same requests, already prepared: raw BullMQ's best case. */
function rawJobs(reqs: readonly CallRequest[], now: number) {
  return reqs.map((r) => {
    const job: CallJob = {
      callId: keyedCallId(CAMPAIGN, r.key ?? ''),
      campaignId: CAMPAIGN,
      phoneNumber: r.phoneNumber,
      metadata: r.metadata ?? {},
      enqueuedAt: now,
    };
    return { name: 'dial', data: job, opts: jobOptions(job.callId, 0, MAX_ATTEMPTS) };
  });
}

interface Timing {
  ms: number;
  /** CPU time this process spent (user + system): ours validates and writes records, raw mostly waits on Redis. */
  cpuMs: number;
  /** CPU time Redis' main thread spent meanwhile (the scripts and commands of both sides run there). */
  redisCpuMs: number;
}

async function measure(redis: Redis): Promise<() => Promise<Timing>> {
  const redisBefore = await redisMainThreadCpuS(redis);
  const started = performance.now();
  const cpu = process.cpuUsage();
  return async () => {
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const redisCpuMs = ((await redisMainThreadCpuS(redis)) - redisBefore) * 1000;
    return { ms, cpuMs: (used.user + used.system) / 1000, redisCpuMs };
  };
}

async function runOurs(url: string, reqs: readonly CallRequest[]): Promise<Timing> {
  const prefix = `bench-ours-${randomUUID().slice(0, 8)}`;
  const connection = createProducerConnection(url);
  try {
    await waitUntilReady(connection);
    const stop = await measure(connection);
    const summary = await enqueueCalls(reqs, { connection, prefix, maxAttempts: MAX_ATTEMPTS });
    const timing = await stop();
    if (summary.enqueued.length !== reqs.length) {
      throw new Error(`ours enqueued ${summary.enqueued.length} of ${reqs.length} (rejected ${summary.rejected.length})`);
    }
    const queue = new Queue(CALLS_QUEUE, { connection, prefix });
    const waiting = await queue.getJobCountByTypes('wait');
    await queue.close();
    if (waiting !== reqs.length) throw new Error(`ours: ${waiting} jobs waiting, expected ${reqs.length}`);
    return timing;
  } finally {
    await deleteKeysWithPrefix(connection, prefix);
    await closeConnection(connection);
  }
}

async function runRaw(url: string, reqs: readonly CallRequest[]): Promise<Timing> {
  const prefix = `bench-raw-${randomUUID().slice(0, 8)}`;
  const connection = createProducerConnection(url);
  const queue = new Queue<CallJob>(CALLS_QUEUE, { connection, prefix });
  try {
    await waitUntilReady(connection);
    const jobs = rawJobs(reqs, Date.now());
    const stop = await measure(connection);
    for (let i = 0; i < jobs.length; i += RAW_CHUNK_SIZE) await queue.addBulk(jobs.slice(i, i + RAW_CHUNK_SIZE));
    const timing = await stop();
    const waiting = await queue.getJobCountByTypes('wait');
    if (waiting !== reqs.length) throw new Error(`raw: ${waiting} jobs waiting, expected ${reqs.length}`);
    return timing;
  } finally {
    await queue.close();
    await deleteKeysWithPrefix(connection, prefix);
    await closeConnection(connection);
  }
}

const rate = (ms: number) => Math.round((CALLS / ms) * 1000);
/** µs of CPU per call. */
const perCall = (ms: number) => ((ms * 1000) / CALLS).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

function side(name: string, t: Timing): string {
  return `${name} ${rate(t.ms).toLocaleString('en')} jobs/s (${Math.round(t.ms)} ms; cpu/call ${perCall(t.cpuMs)} µs here + ${perCall(t.redisCpuMs)} µs Redis)`;
}

/** Starts `n` busy-looping Node processes (killed by the returned function, and when this process exits). */
function startHogs(n: number): () => void {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < n; i++) hogs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  const stop = () => {
    for (const hog of hogs) hog.kill('SIGKILL');
  };
  process.once('exit', stop);
  return stop;
}

async function main(): Promise<void> {
  const redis = await findOrStartRedis();
  const stopHogs = startHogs(HOGS);
  try {
    const goal = HOGS > 0 ? GOAL_LOADED : GOAL_QUIET;
    console.log(
      `enqueue bench: ${CALLS.toLocaleString('en')} calls per run, chunks of ${ENQUEUE_CHUNK_SIZE} (raw: ${RAW_CHUNK_SIZE}), Redis ${redis.url} (${redis.source}), ` +
        `${HOGS} CPU hog${HOGS === 1 ? '' : 's'} beside it, load average ${load()}`,
    );
    const reqs = requests(CALLS);
    await runOurs(redis.url, reqs.slice(0, 2 * RAW_CHUNK_SIZE)); // warm-up: JIT, script loading
    await runRaw(redis.url, reqs.slice(0, 2 * RAW_CHUNK_SIZE));
    let oursTotal = 0;
    let rawTotal = 0;
    const ratios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // alternate which goes first, so neither always meets a freshly emptied Redis
      const order = round % 2 === 1 ? (['ours', 'raw'] as const) : (['raw', 'ours'] as const);
      const t: Partial<Record<'ours' | 'raw', Timing>> = {};
      for (const which of order) t[which] = which === 'ours' ? await runOurs(redis.url, reqs) : await runRaw(redis.url, reqs);
      const none = { ms: Number.NaN, cpuMs: Number.NaN, redisCpuMs: Number.NaN };
      const ours = t.ours ?? none;
      const raw = t.raw ?? none;
      oursTotal += ours.ms;
      rawTotal += raw.ms;
      ratios.push(raw.ms / ours.ms);
      console.log(`round ${round}: ${side('enqueueCalls', ours)}   ${side('raw addBulk', raw)}   ratio ${(raw.ms / ours.ms).toFixed(2)}`);
    }
    const ratio = rawTotal / oursTotal;
    console.log(
      `overall: enqueueCalls ${Math.round((CALLS * ROUNDS * 1000) / oursTotal).toLocaleString('en')} jobs/s, ` +
        `raw addBulk ${Math.round((CALLS * ROUNDS * 1000) / rawTotal).toLocaleString('en')} jobs/s, ` +
        `ours/raw = ${ratio.toFixed(2)} (median round ${median(ratios).toFixed(2)}; goal ≥ ${goal}${HOGS > 0 ? ' under load' : ' quiet'}) ${ratio >= goal ? 'OK' : 'BELOW GOAL'}; load average ${load()}`,
    );
  } finally {
    stopHogs();
    await redis.stop();
  }
}

await main();
