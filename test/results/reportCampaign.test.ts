import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { systemClock } from '../../src/core/time.js';
import { runCliInProcess as runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

let redis: Redis;
const prefix = uniquePrefix('report-campaign');

beforeAll(() => {
  redis = new Redis(testRedisUrl());
});
afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

describe('report of a campaign object', () => {
  it("shows the campaign's state and settings above its calls, even before its first call, never its webhook secret", async () => {
    const campaigns = new CampaignStore(redis, prefix, systemClock);
    await campaigns.create({ id: 'rep-defined', cps: 3, max_active_calls: 7, webhook: { url: 'https://example.com/h', secret: 'hush-hush' } });
    await campaigns.pause('rep-defined');
    const run = await runCli(['report', '--campaign', 'rep-defined'], { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^campaign rep-defined: paused \(.*cps 3.*max_active_calls 7/m);
    expect(run.stdout).not.toContain('hush-hush');
  }, 60_000);
});
