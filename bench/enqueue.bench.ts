/**
 * Enqueue throughput: our `enqueueCalls` (validation, E.164 normalisation, call records, idempotency keys)
 * against raw BullMQ `queue.addBulk` with the same payloads, job options and chunk size, side by side in one run.
 * Goal: ours ≥ 0.8 × raw. Redis: REDIS_URL, else 127.0.0.1:6379, else a redis-server started for the run.
 *
 *   npm run bench:enqueue                     # 100,000 calls, 3 alternating rounds
 *   BENCH_CALLS=20000 BENCH_ROUNDS=2 npm run bench:enqueue
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
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
const GOAL = 0.8;

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
}

function measure(): () => Timing {
  const started = performance.now();
  const cpu = process.cpuUsage();
  return () => {
    const used = process.cpuUsage(cpu);
    return { ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000 };
  };
}

async function runOurs(url: string, reqs: readonly CallRequest[]): Promise<Timing> {
  const prefix = `bench-ours-${randomUUID().slice(0, 8)}`;
  const connection = createProducerConnection(url);
  try {
    await waitUntilReady(connection);
    const stop = measure();
    const summary = await enqueueCalls(reqs, { connection, prefix, maxAttempts: MAX_ATTEMPTS });
    const timing = stop();
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
    const stop = measure();
    for (let i = 0; i < jobs.length; i += ENQUEUE_CHUNK_SIZE) await queue.addBulk(jobs.slice(i, i + ENQUEUE_CHUNK_SIZE));
    const timing = stop();
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

async function main(): Promise<void> {
  const redis = await findOrStartRedis();
  try {
    console.log(`enqueue bench: ${CALLS.toLocaleString('en')} calls per run, chunk ${ENQUEUE_CHUNK_SIZE}, Redis ${redis.url} (${redis.source})`);
    const reqs = requests(CALLS);
    await runOurs(redis.url, reqs.slice(0, 2 * ENQUEUE_CHUNK_SIZE)); // warm-up: JIT, script loading
    await runRaw(redis.url, reqs.slice(0, 2 * ENQUEUE_CHUNK_SIZE));
    let oursTotal = 0;
    let rawTotal = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      // alternate which goes first, so neither always meets a freshly emptied Redis
      const order = round % 2 === 1 ? (['ours', 'raw'] as const) : (['raw', 'ours'] as const);
      const t: Partial<Record<'ours' | 'raw', Timing>> = {};
      for (const which of order) t[which] = which === 'ours' ? await runOurs(redis.url, reqs) : await runRaw(redis.url, reqs);
      const ours = t.ours ?? { ms: Number.NaN, cpuMs: Number.NaN };
      const raw = t.raw ?? { ms: Number.NaN, cpuMs: Number.NaN };
      oursTotal += ours.ms;
      rawTotal += raw.ms;
      console.log(
        `round ${round}: enqueueCalls ${rate(ours.ms).toLocaleString('en')} jobs/s (${Math.round(ours.ms)} ms, cpu ${Math.round(ours.cpuMs)} ms)   ` +
          `raw addBulk ${rate(raw.ms).toLocaleString('en')} jobs/s (${Math.round(raw.ms)} ms, cpu ${Math.round(raw.cpuMs)} ms)   ` +
          `ratio ${(raw.ms / ours.ms).toFixed(2)}`,
      );
    }
    const ratio = rawTotal / oursTotal;
    console.log(
      `overall: enqueueCalls ${Math.round((CALLS * ROUNDS * 1000) / oursTotal).toLocaleString('en')} jobs/s, ` +
        `raw addBulk ${Math.round((CALLS * ROUNDS * 1000) / rawTotal).toLocaleString('en')} jobs/s, ` +
        `ours/raw = ${ratio.toFixed(2)} (goal ≥ ${GOAL}) ${ratio >= GOAL ? 'OK' : 'BELOW GOAL'}`,
    );
  } finally {
    await redis.stop();
  }
}

await main();
