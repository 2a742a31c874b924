/** A campaign's default_region reads the national numbers enqueued to it (library, CLI enqueue and import, API). */
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { CallStore } from '../../src/core/callStore.js';
import { systemClock } from '../../src/core/time.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { runCliInProcess as runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

let redis: Redis;
let producer: CallProducer;
let dir: string;
const prefix = uniquePrefix('campaign-region');

beforeAll(async () => {
  redis = new Redis(testRedisUrl());
  dir = await mkdtemp(join(tmpdir(), 'campaign-region-'));
  // DIAL_DEFAULT_REGION is US here; the campaign's is GB
  producer = new CallProducer({ connection: redis, prefix, maxAttempts: 1, defaultRegion: 'US' });
  await new CampaignStore(redis, prefix, systemClock).create({ id: 'london', default_region: 'GB' });
});
afterAll(async () => {
  await producer.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
  await rm(dir, { recursive: true, force: true });
});

const numberOf = async (campaignId: string, callId: string) => (await new CallStore(redis, prefix, systemClock).get(campaignId, callId))?.phoneNumber;

describe("a campaign's default_region", () => {
  it('reads national numbers of requests without a region, before DIAL_DEFAULT_REGION; a request region still wins', async () => {
    const { callId } = await producer.enqueueCall({ phoneNumber: '020 7946 0958', campaignId: 'london' });
    expect(await numberOf('london', callId)).toBe('+442079460958');
    // another campaign (implicit, no document) keeps DIAL_DEFAULT_REGION
    const us = await producer.enqueueCall({ phoneNumber: '(415) 555-0125', campaignId: 'elsewhere' });
    expect(await numberOf('elsewhere', us.callId)).toBe('+14155550125');
    const own = await producer.enqueueCall({ phoneNumber: '(415) 555-0126', campaignId: 'london', region: 'US' });
    expect(await numberOf('london', own.callId)).toBe('+14155550126');
    // the same national number is refused in a campaign read as US: the region really came from the campaign
    await expect(producer.enqueueCall({ phoneNumber: '020 7946 0958', campaignId: 'elsewhere' })).rejects.toThrow();
  });

  it('applies to `dialer enqueue` and `dialer import` with no --region and no DIAL_DEFAULT_REGION', async () => {
    const env = { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix };
    const one = await runCli(['enqueue', '020 7946 0959', '--campaign', 'london'], env);
    expect(one.code, one.stderr).toBe(0);
    expect(await numberOf('london', one.stdout.trim())).toBe('+442079460959');
    const file = join(dir, 'list.csv');
    await writeFile(file, 'phone_number,name\n020 7946 0960,Ann\n07700 900123,Bob\n');
    const imported = await runCli(['import', file, '--campaign', 'london'], env);
    expect(imported.code, imported.stderr + imported.stdout).toBe(0);
    const numbers = (await new CallStore(redis, prefix, systemClock).list('london')).map((r) => r.phoneNumber);
    expect(numbers).toEqual(expect.arrayContaining(['+442079460960', '+447700900123']));
  }, 60_000);
});
