// Dial-rate benchmark: 1,000 calls through the simulator at DIAL_CPS=50 with two consumers, measured where a
// carrier counts them (when the simulated LiveKit receives CreateSIPParticipant). Side by side in the same run:
// BullMQ's own fixed-window limiter at the same nominal rate, for the rolling-second peak it allows.
// Run: npm run bench:cps  [CALLS=1000 CPS=50]
import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { findOrStartRedis } from '../src/core/localRedis.js';
import { SECOND, sleep } from '../src/core/time.js';
import { startDialWorker } from '../src/consumer/dialWorker.js';
import { CallProducer } from '../src/producer/enqueueCalls.js';
import { startLiveKitSim } from '../src/sim/index.js';
import { maxInRollingWindow } from '../test/helpers/rollingWindow.js';
import { deleteKeysWithPrefix } from '../test/helpers/testRedis.js';

const CALLS = Number(process.env.CALLS ?? 1000);
const CPS = Number(process.env.CPS ?? 50);
const CONSUMERS = 2;
const CONCURRENCY_PER_CONSUMER = 100;
const ANSWER_AFTER_MS = 50;
const BULLMQ_WORKER_SLOTS = 40;

function rate(starts: number[]): { achievedCps: number; peak: number } {
  const sorted = [...starts].sort((a, b) => a - b);
  const span = (sorted.at(-1) ?? 0) - (sorted[0] ?? 0);
  return { achievedCps: ((sorted.length - 1) * SECOND) / span, peak: maxInRollingWindow(sorted, SECOND) };
}

async function ourDialer(redisUrl: string): Promise<number[]> {
  const prefix = `bench-cps-${randomUUID().slice(0, 8)}`;
  const sim = await startLiveKitSim({ network: { default: { type: 'answer', afterMs: ANSWER_AFTER_MS } } });
  const config = loadConfig({
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    LIVEKIT_URL: sim.url,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    DIAL_CPS: String(CPS),
    DIAL_CONCURRENCY: String(CONCURRENCY_PER_CONSUMER),
    LOG_LEVEL: 'silent',
  });
  const logger = createLogger('silent');
  const redis = new Redis(redisUrl);
  const producer = new CallProducer({ connection: redis, prefix, maxAttempts: 1 });
  await producer.enqueueCalls(
    Array.from({ length: CALLS }, (_, i) => ({ phoneNumber: `+1415${String(2000000 + i).padStart(7, '0')}`, campaignId: 'bench' })),
  );
  const dialers = await Promise.all(Array.from({ length: CONSUMERS }, () => startDialWorker({ config, logger })));
  const deadline = Date.now() + (CALLS / CPS) * SECOND * 2 + 30 * SECOND;
  while (sim.calls.filter((c) => c.result === 'answered').length < CALLS && Date.now() < deadline) await sleep(100);
  const starts = sim.calls.map((c) => c.receivedAt);
  await Promise.all(dialers.map((d) => d.close()));
  await producer.close();
  await sim.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
  return starts;
}

async function bullmqLimiter(redisUrl: string): Promise<number[]> {
  const prefix = `bench-bullmq-${randomUUID().slice(0, 8)}`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('calls', { connection: redis, prefix });
  await queue.addBulk(Array.from({ length: CALLS }, (_, i) => ({ name: 'dial', data: { i } })));
  const starts: number[] = [];
  const worker = new Worker(
    'calls',
    async () => {
      starts.push(Date.now());
      await sleep(ANSWER_AFTER_MS);
    },
    { connection: redis, prefix, concurrency: BULLMQ_WORKER_SLOTS, limiter: { max: CPS, duration: SECOND } },
  );
  const deadline = Date.now() + (CALLS / CPS) * SECOND * 2 + 30 * SECOND;
  while (starts.length < CALLS && Date.now() < deadline) await sleep(100);
  await worker.close();
  await queue.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
  return starts;
}

const provided = await findOrStartRedis();
try {
  console.log(`dial rate: ${CALLS} calls, limit ${CPS}/s, ${CONSUMERS} consumers × ${CONCURRENCY_PER_CONSUMER} slots, redis ${provided.source}`);
  const ours = rate(await ourDialer(provided.url));
  const bull = rate(await bullmqLimiter(provided.url));
  const row = (name: string, r: { achievedCps: number; peak: number }) =>
    `${name.padEnd(34)} achieved ${r.achievedCps.toFixed(2).padStart(6)}/s  achieved/limit ${(r.achievedCps / CPS).toFixed(3)}  peak in any rolling second ${String(r.peak).padStart(3)} (limit ${CPS})`;
  console.log(row('ours (Redis GCRA, at the simulator)', ours));
  console.log(row('BullMQ limiter (fixed window)', bull));
  const ok = ours.peak <= CPS && ours.achievedCps / CPS >= 0.95;
  console.log(ok ? 'goal met: ≥ 0.95 of the limit, never above it in any rolling second' : 'GOAL MISSED');
  process.exitCode = ok ? 0 : 1;
} finally {
  await provided.stop();
}
