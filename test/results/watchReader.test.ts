/**
 * `report --watch` reads (WatchReader, renderFrame) against a real Redis, with records written through the store's
 * own steps and a test clock: what "ringing" counts, which calls wait to retry, how rates are measured, and which caps
 * the held reasons name.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { CallStore } from '../../src/core/callStore.js';
import { renderFrame, WatchReader } from '../../src/results/report/watchView.js';
import { TestClock } from '../helpers/testClock.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const prefix = uniquePrefix('watch-reader');
let redis: Redis;
let clock: TestClock;
let store: CallStore;
let campaigns: CampaignStore;

beforeAll(() => {
  redis = new Redis(testRedisUrl());
  clock = new TestClock();
  store = new CallStore(redis, prefix, clock);
  campaigns = new CampaignStore(redis, prefix, clock);
});
afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

const identity = (campaignId: string, callId: string) => ({ callId, campaignId, phoneNumber: '+14155550123', metadata: {} });
const reader = (campaignId: string) => new WatchReader(redis, store, campaigns, campaignId, { prefix, timeZone: 'UTC', outboundCap: undefined }, clock);

describe('report --watch: calls ringing and waiting', () => {
  it('counts as ringing only calls whose dial was sent, and tells calls given back undialed from calls waiting to retry', async () => {
    const c = 'watch-ringing';
    for (const id of ['slot', 'rings', 'drained', 'busy']) await store.createCalls(c, [identity(c, id)]);
    await store.beginAttempt(identity(c, 'slot'), 1, 'room-slot'); // waiting for its DIAL_CPS slot
    await store.beginAttempt(identity(c, 'rings'), 1, 'room-rings', { dialSent: true });
    await store.beginAttempt(identity(c, 'drained'), 1, 'room-drained');
    await store.endAttempt(c, 'drained', 1, 'waiting_retry', { result: 'not_started' }); // a draining consumer gave the slot back
    await store.beginAttempt(identity(c, 'busy'), 1, 'room-busy', { dialSent: true });
    await store.endAttempt(c, 'busy', 1, 'waiting_retry', { result: 'busy' });

    const snapshot = await reader(c).read();
    const frame = renderFrame(snapshot, [snapshot], 'UTC').join('\n');
    expect(frame).toContain('now: 1 ringing, 1 waiting for a dial slot, 0 in progress, 0 queued, 1 waiting to retry, 1 back in the queue undialed');
    expect(snapshot.held).toContainEqual({ reason: 'waiting to retry after busy / no answer / failure', calls: 1 });
    expect(snapshot.held).toContainEqual({ reason: 'back in the queue undialed (a consumer stopped, or LiveKit failed, before the dial went out)', calls: 1 });
  });
});
