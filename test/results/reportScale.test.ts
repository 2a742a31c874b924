import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { CallStore } from '../../src/core/callStore.js';
import { systemClock } from '../../src/core/time.js';
import { runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const url = testRedisUrl();
const prefix = uniquePrefix('report-scale');
const campaignId = 'big';
const CALLS = 100_000;
const BATCH = 1000;
let redis: Redis;
let store: CallStore;

beforeAll(async () => {
  redis = new Redis(url);
  store = new CallStore(redis, prefix, systemClock);
  for (let i = 0; i < CALLS; i += BATCH) {
    await store.createCalls(
      campaignId,
      Array.from({ length: BATCH }, (_, j) => ({ callId: `c-${i + j}`, phoneNumber: `+1415${String(3000000 + i + j)}`, metadata: {} })),
    );
  }
  for (let i = 0; i < 10; i++) {
    await store.applyTerminal({ callId: `c-${i}`, campaignId, outcome: i % 2 ? 'busy' : 'answered', reportedBy: 'consumer', endedAt: Date.now() });
  }
}, 120_000);

afterAll(async () => {
  await redis.quit();
  await deleteKeysWithPrefix(url, prefix);
});

describe('report at 100,000 calls', () => {
  it('answers the campaign totals in milliseconds from its counters', async () => {
    const started = performance.now();
    const counters = await store.counters(campaignId);
    const elapsed = performance.now() - started;
    // the busy ones are ended straight from queued: never dialed (undialed), unlike an answer
    expect(counters).toEqual({ total: CALLS, terminal: 10, undialed: 5, byOutcome: { answered: 5, busy: 5 } });
    expect(elapsed).toBeLessThan(50);
  });

  it('prints the table without reading every record, and --json with every call', { timeout: 180_000 }, async () => {
    const table = await runCli(['report', '--campaign', campaignId], { REDIS_URL: url, QUEUE_PREFIX: prefix });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/Campaign big: 100000 calls, 99990 pending/);
    expect(table.stdout).toMatch(/… 99950 more/);
    const json = await runCli(['report', '--campaign', campaignId, '--json'], { REDIS_URL: url, QUEUE_PREFIX: prefix });
    const report = JSON.parse(json.stdout) as { calls: unknown[]; pending: number };
    expect(report.calls).toHaveLength(CALLS);
    expect(report.pending).toBe(CALLS - 10);
  });
});
