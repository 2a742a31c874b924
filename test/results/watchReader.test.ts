/**
 * `report --watch` reads (WatchReader, renderFrame) against a real Redis, with records written through the store's
 * own steps and a test clock: what "ringing" counts, which calls wait to retry, how rates are measured, and which caps
 * the held reasons name.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { ActiveCallLeases } from '../../src/core/activeCallLeases.js';
import { CallStore } from '../../src/core/callStore.js';
import { HeldCalls } from '../../src/core/heldCalls.js';
import { publishOutboundCap } from '../../src/core/outboundCap.js';
import { terminalTransition, type CallResult } from '../../src/core/outcomes.js';
import { MINUTE, SECOND } from '../../src/core/time.js';
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
const reader = (campaignId: string) => new WatchReader(redis, store, campaigns, campaignId, { prefix, timeZone: 'UTC' }, clock);

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
    const frame = renderFrame(snapshot, 'UTC').join('\n');
    expect(frame).toContain('now: 1 ringing, 1 waiting for a dial slot, 0 in progress, 0 queued, 1 waiting to retry, 1 back in the queue undialed');
    expect(snapshot.held).toContainEqual({ reason: 'waiting to retry after busy / no answer / failure', calls: 1 });
    expect(snapshot.held).toContainEqual({ reason: 'back in the queue undialed (a consumer stopped, or LiveKit failed, before the dial went out)', calls: 1 });
  });
});

describe('report --watch: rates', () => {
  /** Ends a call as an operator's cancel does (applyTerminal), at the clock's now. */
  const cancel = async (campaignId: string, callId: string) => {
    const result: CallResult = { callId, campaignId, outcome: 'canceled', reason: 'test', reportedBy: 'operator', endedAt: clock.now() };
    expect((await store.applyTransition(result, terminalTransition(result))).status).toBe('applied');
  };

  it('counts dials sent and calls ended in the last minute by their records’ own times, from the first reading on; an undialed end is no dial', async () => {
    const c = 'watch-rates';
    for (const id of ['early', 'late', 'never', 'next']) await store.createCalls(c, [identity(c, id)]);
    await store.beginAttempt(identity(c, 'early'), 1, 'room-early', { dialSent: true });
    await clock.advance(30 * SECOND);
    await store.beginAttempt(identity(c, 'late'), 1, 'room-late', { dialSent: true });
    await cancel(c, 'never'); // canceled before any dial: an end, not a dial
    await clock.advance(45 * SECOND); // 'early' dialed 75 s ago, 'late' and the cancel 45 s ago

    const watch = reader(c);
    const first = await watch.read();
    expect(first.lastMinute).toEqual({ dialed: 1, ended: 1 });
    expect(renderFrame(first, 'UTC')).toContain('last minute: 1 dials sent, 1 calls ended');

    await clock.advance(2 * SECOND);
    await store.beginAttempt(identity(c, 'next'), 1, 'room-next', { dialSent: true });
    expect((await watch.read()).lastMinute).toEqual({ dialed: 2, ended: 1 });
    await clock.advance(50 * SECOND); // the cancel and 'late' are now 97 s old, 'next' 50 s
    expect((await watch.read()).lastMinute).toEqual({ dialed: 1, ended: 0 });
  });
});

describe('report --watch: the caps it names', () => {
  it('shows the outbound cap the consumers published, names both caps when both are full, and says "1 call"', async () => {
    const c = 'watch-caps';
    await campaigns.create({ id: c, max_active_calls: 1 });
    const watch = reader(c);
    expect((await watch.read()).global).toBeUndefined(); // no consumer has said what it dials under
    await publishOutboundCap(redis, prefix, 1); // as a consumer with DIAL_MAX_ACTIVE_CALLS=1 does at its start
    expect((await new ActiveCallLeases(redis, prefix).acquire({ campaignId: c, callId: 'ringing' }, { limit: 1, campaignLimit: 1, ttlMs: MINUTE })).held).toBe(true);
    await new HeldCalls(redis, prefix, clock).hold(c, 'waiting', 'active_calls');

    const snapshot = await watch.read();
    expect(snapshot.global).toEqual({ active: 1, cap: 1 });
    const frame = renderFrame(snapshot, 'UTC').join('\n');
    expect(frame).toContain('lines 1/1 (all campaigns 1/1)');
    expect(frame).toContain('held: all 1 outbound lines in use (DIAL_MAX_ACTIVE_CALLS), and the campaign at its cap of 1 calls in progress too (1 call)');

    await publishOutboundCap(redis, prefix, undefined); // the consumers dial without a cap now
    expect((await watch.read()).global).toBeUndefined();
  });
});
