/** `dialer purge --campaign ID` / `--before DATE`: a summary line, exit 0; bad input exits 2 and deletes nothing. */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { systemClock } from '../../src/core/time.js';
import { runCliInProcess as runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const url = testRedisUrl();
const prefix = uniquePrefix('purge-cli');
const env = { REDIS_URL: url, QUEUE_PREFIX: prefix };
let redis: Redis;
let store: CallStore;

beforeAll(async () => {
  redis = new Redis(url);
  store = new CallStore(redis, prefix, systemClock);
  await store.createCalls('cli', [
    { callId: 'ended-1', phoneNumber: '+14155550190', metadata: {} },
    { callId: 'ended-2', phoneNumber: '+14155550191', metadata: {} },
    { callId: 'queued-1', phoneNumber: '+14155550192', metadata: {} },
  ]);
  await store.applyTerminal({ callId: 'ended-1', campaignId: 'cli', outcome: 'busy', reportedBy: 'consumer', endedAt: Date.parse('2025-01-10T12:00:00Z') });
  await store.applyTerminal({ callId: 'ended-2', campaignId: 'cli', outcome: 'busy', reportedBy: 'consumer', endedAt: Date.parse('2025-03-10T12:00:00Z') });
});

afterAll(async () => {
  await redis.quit();
  await deleteKeysWithPrefix(url, prefix);
});

describe('dialer purge', () => {
  it('refuses missing or bad options with exit 2 and deletes nothing', async () => {
    const bad = [[], ['--before', 'last week'], ['--before', '2025-02-30'], ['--campaign', 'a:b']];
    const runs = [];
    for (const args of bad) runs.push(await runCli(['purge', ...args], env));
    for (const [i, run] of runs.entries()) {
      expect(run.code, bad[i]?.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/^dialer: /);
      expect(run.stdout).toBe('');
    }
    expect(await store.callIds('cli')).toEqual(['ended-1', 'ended-2', 'queued-1']);
  });

  it('--before DATE purges the calls that ended before it, --campaign ID the rest; calls in flight stay', async () => {
    const dated = await runCli(['purge', '--before', '2025-02-01'], env);
    expect(dated.code).toBe(0);
    expect(dated.stdout).toMatch(/^purged 1 ended call in 1 campaign, \d+ queue jobs? removed; in flight \(kept\) 1\n$/);
    expect(await store.callIds('cli')).toEqual(['ended-2', 'queued-1']);
    const all = await runCli(['purge', '--campaign', 'cli'], env);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^purged 1 ended call in 1 campaign, \d+ queue jobs? removed; in flight \(kept\) 1\n$/);
    expect(await store.callIds('cli')).toEqual(['queued-1']);
    expect(await store.counters('cli')).toEqual({ total: 1, terminal: 0, undialed: 0, byOutcome: {} });
  });
});
