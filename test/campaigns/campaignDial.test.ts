import { afterEach, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { systemClock } from '../../src/core/time.js';
import type { LiveKitSim } from '../../src/sim/index.js';
import { startDialWorker } from '../../src/consumer/dialWorker.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

const numbers = (count: number, base: number) => Array.from({ length: count }, (_, i) => `+1415558${String(base + i).padStart(4, '0')}`);

let pipeline: TestPipeline | undefined;
let reporter: ResultReporter | undefined;
afterEach(async () => {
  await reporter?.close();
  reporter = undefined;
  await pipeline?.close();
  pipeline = undefined;
});

/** Stands in for the agent: reports `answered` when the callee hangs up (the consumer's room is call-<id>-<attempt>). */
function reportHangups(sim: LiveKitSim, r: ResultReporter, campaignId: string): void {
  sim.events.on('call_ended', (event) => {
    const match = /^call-(.+)-(\d+)$/.exec(event.room);
    if (!match?.[1]) return;
    void r.report({ callId: match[1], campaignId, outcome: 'answered', attempt: Number(match[2]), reportedBy: 'agent', endedAt: Date.now() });
  });
}


/** How late the in-process simulator may stamp a dial on a loaded machine (its handler runs after other work). */
const STAMP_MARGIN_MS = 500;
/** How often a call held by its campaign's full cap asks again in the lowered-cap test (ACTIVE_CAP_RECHECK_MS, 1 s, in production). */
const CAP_RECHECK_MS = 200;
/** Looks a held call gets at the lowered cap before the first call of the campaign hangs up. */
const LOOKS_BEFORE_HANGING_UP = 5;
describe('campaign settings at the dialer', () => {
  it('honours a lowered cap of calls in progress at its next look (a second by default)', async () => {
    const campaignId = 'cap-lowered';
    // the calls stay up until this test hangs them up, one at a time once the change has had a few looks to take
    // effect: three in progress at the change, then the other three one by one (before, timed hang-ups let a loaded
    // machine place every call before the change was even made)
    pipeline = await startTestPipeline('campaign-cap', { dialers: 0, network: { default: { type: 'answer', afterMs: 50 } } });
    const p = pipeline;
    // a held call asks again every CAP_RECHECK_MS instead of every second: the same sequence, faster
    p.dialers.push(await startDialWorker({ config: p.config, logger: silentLogger, capRecheckMs: CAP_RECHECK_MS }));
    reporter = new ResultReporter(p.redis, p.config.queuePrefix);
    reportHangups(p.sim, reporter, campaignId);
    const campaigns = new CampaignStore(p.redis, p.config.queuePrefix, systemClock);
    await campaigns.create({ id: campaignId, max_active_calls: 3 });
    let active = 0;
    const dialsAt: { at: number; activeBefore: number }[] = [];
    const answered: { room: string; identity: string }[] = [];
    p.sim.events.on('call_dialing', () => {
      dialsAt.push({ at: Date.now(), activeBefore: active });
      active += 1;
    });
    p.sim.events.on('call_answered', (e) => answered.push({ room: e.room, identity: e.identity }));
    p.sim.events.on('call_ended', () => (active -= 1));
    p.sim.events.on('call_failed', () => (active -= 1));

    const calls = numbers(6, 0);
    const { enqueued } = await p.producer.enqueueCalls(calls.map((phoneNumber) => ({ phoneNumber, campaignId })));
    await waitFor(() => (answered.length === 3 ? true : undefined), 15_000, 'three calls in progress');
    await campaigns.update(campaignId, { max_active_calls: 1 });
    const loweredAt = Date.now();
    await waitFor(() => (Date.now() >= loweredAt + LOOKS_BEFORE_HANGING_UP * CAP_RECHECK_MS ? true : undefined), 10_000, 'a few looks');
    for (let i = 0; i < calls.length; i++) {
      const call = await waitFor(() => answered[i], 30_000, `call ${i + 1} answered`);
      p.sim.hangupCallee(call.room, call.identity);
    }
    for (const { callId } of enqueued) await p.waitForOutcome(campaignId, callId, 60_000);

    expect(dialsAt).toHaveLength(6);
    expect(Math.max(...dialsAt.map((d) => d.activeBefore))).toBeLessThanOrEqual(2); // never more than 3 at once
    // after the change, a call rings only when no other call of the campaign is in progress
    const late = dialsAt.filter((d) => d.at > loweredAt);
    expect(late).toHaveLength(3);
    for (const dial of late) expect(dial.activeBefore).toBe(0);
  });

  it('ramps its rate up from from_cps to cps at the start', async () => {
    const campaignId = 'ramped';
    pipeline = await startTestPipeline('campaign-ramp', { env: { DIAL_CPS: '50', DIAL_CONCURRENCY: '20' }, network: { default: { type: 'answer', afterMs: 20, hangupAfterMs: 50 } } });
    const p = pipeline;
    reporter = new ResultReporter(p.redis, p.config.queuePrefix);
    reportHangups(p.sim, reporter, campaignId);
    // from 1 to 4 calls a second over 2 s: about 2, 3, then 4 a second; 10 calls reach the full rate in second 2
    const ramp = { from_cps: 1, over_s: 2 };
    const cps = 4;
    await new CampaignStore(p.redis, p.config.queuePrefix, systemClock).create({ id: campaignId, cps, ramp });
    const started = Date.now();
    const { enqueued } = await p.producer.enqueueCalls(numbers(10, 100).map((phoneNumber) => ({ phoneNumber, campaignId })));
    for (const { callId } of enqueued) await p.waitForOutcome(campaignId, callId, 60_000);
    const perSecond = new Array<number>(12).fill(0);
    for (const c of p.sim.calls) {
      const second = Math.floor((c.receivedAt - started) / 1000);
      if (second < perSecond.length) perSecond[second] = (perSecond[second] ?? 0) + 1;
    }
    // second 0: about 1 (the ramp's start); from second over_s on, up to cps; never above where the ramp stands
    expect(perSecond[0]).toBeLessThanOrEqual(2);
    const rampAt = (s: number) => Math.floor(ramp.from_cps + ((cps - ramp.from_cps) * Math.min(1, (s + 1) / ramp.over_s)));
    perSecond.forEach((n, s) => expect(n, `second ${s}: ${perSecond.join(',')}`).toBeLessThanOrEqual(rampAt(s) + 1));
    expect(Math.max(...perSecond.slice(ramp.over_s)), perSecond.join(',')).toBeGreaterThanOrEqual(cps - 1);
  });

  it('does not dial a call past its campaign end while it waited for its DIAL_CPS slot, and ends it expired', async () => {
    const campaignId = 'ending-slots';
    // one call a second for everyone: five calls pass the campaign's gates at once, their slots run to 4 s
    pipeline = await startTestPipeline('campaign-end-slots', { env: { DIAL_CPS: '1' }, network: { default: { type: 'answer', afterMs: 20, hangupAfterMs: 50 } } });
    const p = pipeline;
    reporter = new ResultReporter(p.redis, p.config.queuePrefix);
    reportHangups(p.sim, reporter, campaignId);
    const endsAt = Date.now() + 1500;
    await new CampaignStore(p.redis, p.config.queuePrefix, systemClock).create({ id: campaignId, ends_at: new Date(endsAt).toISOString() });
    const { enqueued } = await p.producer.enqueueCalls(numbers(5, 300).map((phoneNumber) => ({ phoneNumber, campaignId })));
    const records = [];
    for (const { callId } of enqueued) records.push(await p.waitForOutcome(campaignId, callId, 30_000));
    const expired = records.filter((r) => r.outcome === 'expired');
    expect(expired.length).toBeGreaterThanOrEqual(2);
    // the claim refuses a start past the end at Redis' time; the margin is for this loaded process's late stamps
    for (const c of p.sim.calls) expect(c.receivedAt).toBeLessThan(endsAt + STAMP_MARGIN_MS);
    expect(p.sim.calls.length + expired.length).toBe(5);
  });

  it('ends the calls not placed by the campaign end as expired', async () => {
    const campaignId = 'ending';
    pipeline = await startTestPipeline('campaign-end', { network: { default: { type: 'answer', afterMs: 20, hangupAfterMs: 50 } } });
    const p = pipeline;
    reporter = new ResultReporter(p.redis, p.config.queuePrefix);
    reportHangups(p.sim, reporter, campaignId);
    const endsAt = Date.now() + 1500;
    await new CampaignStore(p.redis, p.config.queuePrefix, systemClock).create({ id: campaignId, cps: 1, ends_at: new Date(endsAt).toISOString() });
    const { enqueued } = await p.producer.enqueueCalls(numbers(6, 200).map((phoneNumber) => ({ phoneNumber, campaignId })));
    const records = [];
    for (const { callId } of enqueued) records.push(await p.waitForOutcome(campaignId, callId, 30_000));
    const expired = records.filter((r) => r.outcome === 'expired');
    expect(expired.length).toBeGreaterThanOrEqual(3);
    for (const r of expired) expect(r.reason).toMatch(/campaign ending ended at/);
    for (const c of p.sim.calls) expect(c.receivedAt).toBeLessThan(endsAt + STAMP_MARGIN_MS);
    expect(p.sim.calls.length + expired.length).toBe(6);
  });

  it('skips calls of a canceled campaign enqueued after the cancel', async () => {
    const campaignId = 'called-off';
    pipeline = await startTestPipeline('campaign-cancel');
    const p = pipeline;
    const campaigns = new CampaignStore(p.redis, p.config.queuePrefix, systemClock);
    await campaigns.create({ id: campaignId });
    await campaigns.cancel(campaignId);
    const callId = await p.enqueue({ phoneNumber: '+14155589999', campaignId });
    expect(await p.waitForOutcome(campaignId, callId)).toMatchObject({ outcome: 'skipped', reason: 'campaign called-off is canceled' });
    expect(p.sim.calls).toHaveLength(0);
  });
});
