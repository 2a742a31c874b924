/**
 * The pick-up rate is people reached over the ended calls that were dialed at least once: a call that ended before any
 * dial went out (failed before an attempt, failed after LiveKit errors only, canceled, expired, skipped) is left out
 * of the denominator, whatever its outcome. The CLI table, the HTML report and the API's report give the same figure,
 * from the campaign's counters (so it holds for calls whose records expired), and a purge keeps it right.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { terminalTransition, type CallResult } from '../../src/core/outcomes.js';
import { pickUpRate } from '../../src/results/campaignReport.js';
import { reportStats } from '../../src/results/report/reportStats.js';
import { purgeCalls } from '../../src/results/retention.js';
import { body, call, useApiFixture, type ApiFixture } from '../api/apiFixture.js';
import { runCliInProcess } from '../helpers/runCli.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { testRedisUrl } from '../helpers/testRedis.js';

const prefix = uniquePrefix('pick-up-rate');
const campaignId = 'pickups';
let f: ApiFixture;
useApiFixture(prefix, (fixture) => (f = fixture));

/** One call of the campaign, taken to its end through the store's own steps (as reportFixture does). */
async function seed(callId: string, steps: { dialed?: 'sent' | 'log' | 'platform'; outcome: CallResult['outcome'] }): Promise<void> {
  const identity = { callId, campaignId, phoneNumber: '+14155550123', metadata: {} };
  await f.store.createCalls(campaignId, [identity]);
  if (steps.dialed === 'sent') {
    // the agent dialing itself marks the attempt sent at once; a consumer's claim does the same (claimDial)
    await f.store.beginAttempt(identity, 1, `room-${callId}`, { dialSent: true });
    await f.store.endAttempt(campaignId, callId, 1, steps.outcome === 'answered' || steps.outcome === 'voicemail' ? 'in_call' : 'dialing', { result: steps.outcome });
  } else if (steps.dialed === 'log') {
    await f.store.beginAttempt(identity, 1, `room-${callId}`);
    await f.store.endAttempt(campaignId, callId, 1, 'dialing', { result: steps.outcome, sipStatusCode: 486, sipStatus: 'Busy Here' });
  } else if (steps.dialed === 'platform') {
    // an attempt begun, but LiveKit failed before the dial went out (the attempt is not spent), until the call gave up
    await f.store.beginAttempt(identity, 1, `room-${callId}`);
    await f.store.endAttempt(campaignId, callId, 1, 'waiting_retry', { result: 'platform_error' });
  }
  const result: CallResult = { callId, campaignId, outcome: steps.outcome, reason: 'test', reportedBy: steps.outcome === 'answered' || steps.outcome === 'voicemail' ? 'agent' : 'consumer', attempt: steps.dialed ? 1 : 0, endedAt: Date.now() };
  const applied = await f.store.applyTransition(result, terminalTransition(result));
  expect(applied.status, callId).toBe('applied');
}

beforeAll(async () => {
  await seed('answered', { dialed: 'sent', outcome: 'answered' });
  await seed('voicemail', { dialed: 'sent', outcome: 'voicemail' });
  await seed('busy', { dialed: 'log', outcome: 'busy' });
  // never dialed: failed before any attempt (a malformed job, a pre-dial check), failed after LiveKit errors only,
  // canceled, expired
  await seed('failed-early', { outcome: 'failed' });
  await seed('failed-platform', { dialed: 'platform', outcome: 'failed' });
  await seed('canceled', { outcome: 'canceled' });
  await seed('expired', { outcome: 'expired' });
});

describe('the pick-up rate', () => {
  it('counts only calls dialed at least once: 1 person reached of 3 dialed (not of 5, nor of 7)', async () => {
    const counters = await f.store.counters(campaignId);
    expect(counters.terminal).toBe(7);
    expect(pickUpRate(counters)).toEqual({ percent: 100 / 3, people: 1, dialed: 3 });
    expect(reportStats(counters, await f.store.list(campaignId)).pickUp).toEqual({ percent: 100 / 3, people: 1, dialed: 3 });
  });

  it('is the same figure in `dialer report`, `report --json`, `report --html` and the API report', async () => {
    const env = { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix };
    const dir = await mkdtemp(join(tmpdir(), 'pick-up-'));
    try {
      const file = join(dir, 'report.html');
      const [table, json, html] = [
        await runCliInProcess(['report', '--campaign', campaignId], env),
        await runCliInProcess(['report', '--campaign', campaignId, '--json'], env),
        await runCliInProcess(['report', '--campaign', campaignId, '--html', file], env),
      ];
      expect(table.stdout).toContain('pick-up rate 33.3 % (1 of 3 dialed calls reached a person; voicemail does not count)');
      expect((JSON.parse(json.stdout) as { pickUp?: unknown }).pickUp).toEqual({ percent: 100 / 3, people: 1, dialed: 3 });
      expect(html.code, html.stderr).toBe(0);
      expect(await readFile(file, 'utf8')).toContain('1 of 3 dialed reached a person');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const api = body(await call(f.url, 'GET', `/v1/campaigns/${campaignId}/report`, { token: 'read' }));
    expect(api.pick_up).toEqual({ percent: 100 / 3, people: 1, dialed: 3 });
  });

  it('stays right after a purge takes ended calls out of the counters', async () => {
    await purgeCalls(f.redis, prefix, { campaignId, before: Number.MAX_SAFE_INTEGER });
    const counters = await f.store.counters(campaignId);
    expect(counters.terminal).toBe(0);
    expect(pickUpRate(counters)).toBeUndefined();
    await seed('answered-2', { dialed: 'sent', outcome: 'answered' });
    await seed('canceled-2', { outcome: 'canceled' });
    expect(pickUpRate(await f.store.counters(campaignId))).toEqual({ percent: 100, people: 1, dialed: 1 });
  });
});

describe('counters from before `undialed` was kept', () => {
  it('keep the fallback figure after the first new end: the count of undialed calls is seeded from the outcomes that never ring', async () => {
    const old = 'pickups-old';
    const end = async (callId: string, outcome: 'answered' | 'canceled') => {
      const identity = { callId, campaignId: old, phoneNumber: '+14155550123', metadata: {} };
      await f.store.createCalls(old, [identity]);
      if (outcome === 'answered') await f.store.beginAttempt(identity, 1, `room-${callId}`, { dialSent: true });
      const result: CallResult = { callId, campaignId: old, outcome, reason: 'test', reportedBy: outcome === 'answered' ? 'agent' : 'operator', endedAt: Date.now() };
      expect((await f.store.applyTransition(result, terminalTransition(result))).status, callId).toBe('applied');
    };
    await end('old-canceled-1', 'canceled');
    await end('old-canceled-2', 'canceled');
    await end('old-answered', 'answered');
    // as counters written before the field existed: no `undialed`
    await f.redis.hdel(f.store.keys.campaignCounters(old), 'undialed');
    expect(pickUpRate(await f.store.counters(old))).toEqual({ percent: 100, people: 1, dialed: 1 });
    await end('new-answered', 'answered');
    const counters = await f.store.counters(old);
    expect(counters.undialed).toBe(2);
    expect(pickUpRate(counters)).toEqual({ percent: 100, people: 2, dialed: 2 });
    // purging the old canceled calls (records written before `dialed` was kept) takes them out of the seeded count
    for (const id of ['old-canceled-1', 'old-canceled-2']) await f.redis.hdel(f.store.keys.callRecord(old, id), 'dialed');
    // a call still queued keeps the campaign (and its counters) through the purge
    await f.store.createCalls(old, [{ callId: 'still-queued', phoneNumber: '+14155550124', metadata: {} }]);
    await purgeCalls(f.redis, prefix, { campaignId: old, before: Number.MAX_SAFE_INTEGER });
    expect((await f.store.counters(old)).undialed).toBe(0);
  });
});
