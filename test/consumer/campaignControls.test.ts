import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DialRateLimiter } from '../../src/consumer/dialRateLimiter.js';
import { cancelCalls } from '../../src/producer/cancelCalls.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { runCliInProcess as runCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';

let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline('controls', { network: { default: { type: 'answer', afterMs: 50 } } });
});

afterAll(async () => {
  await p.close();
});

describe('campaign controls', () => {
  it('never dials a number on the do-not-call list: the call ends as skipped', async () => {
    const add = await runCli(['dnc', 'add', '+1 415 555 8001'], p.env);
    expect(add).toMatchObject({ code: 0, stdout: 'added 1\n' });
    expect((await runCli(['dnc', 'list'], p.env)).stdout).toBe('+14155558001\n');
    const callId = await p.enqueue({ phoneNumber: '+14155558001', campaignId: 'dnc' });
    const record = await p.waitForOutcome('dnc', callId);
    expect(record).toMatchObject({ outcome: 'skipped', reason: 'number is on the do-not-call list', attempts: 0 });
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155558001')).toHaveLength(0);
    expect((await runCli(['dnc', 'remove', '+14155558001'], p.env)).stdout).toBe('removed 1\n');
  });

  it('pause holds a campaign\'s calls back without spending attempts (others go on); resume dials them at once', async () => {
    const campaignId = 'pause-me';
    // a campaign exists once it has a call (pausing a name that has none is refused as a likely typo)
    await p.enqueue({ phoneNumber: '+14155558300', campaignId, notBefore: Date.now() + 60 * 60 * 1000 });
    expect(await runCli(['pause', '--campaign', campaignId], p.env)).toMatchObject({ code: 0, stdout: `paused ${campaignId}\n` });
    expect((await runCli(['pause', '--campaign', campaignId], p.env)).stdout).toBe(`${campaignId} was already paused\n`);
    const held = [await p.enqueue({ phoneNumber: '+14155558301', campaignId }), await p.enqueue({ phoneNumber: '+14155558302', campaignId })];
    const other = await p.enqueue({ phoneNumber: '+14155558303', campaignId: 'not-paused' });

    for (const callId of held) await waitFor(async () => ((await p.calls.getJobState(callId)) === 'delayed' ? true : undefined), 5000, 'held');
    await waitFor(async () => ((await p.store.get('not-paused', other))?.state === 'in_call' ? true : undefined), 5000, 'the other campaign');
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155558301' || c.phoneNumber === '+14155558302')).toEqual([]);
    expect(await p.store.get(campaignId, held[0] ?? '')).toMatchObject({ state: 'queued', attempts: 0 });
    expect((await runCli(['report', '--campaign', campaignId], p.env)).stdout).toMatch(/3 pending \(paused/);

    const resumedAt = Date.now();
    const resume = await runCli(['resume', '--campaign', campaignId], p.env);
    expect(resume).toMatchObject({ code: 0, stdout: `resumed ${campaignId}: 2 held calls released\n` });
    for (const callId of held) {
      await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 5000, 'dialed after resume');
      expect(await p.store.get(campaignId, callId)).toMatchObject({ attempts: 1 });
    }
    // released at once, not at the paused calls' one-minute re-check
    const rang = p.sim.calls.filter((c) => c.phoneNumber === '+14155558301' || c.phoneNumber === '+14155558302');
    expect(rang).toHaveLength(2);
    expect(Math.max(...rang.map((c) => c.receivedAt)) - resumedAt).toBeLessThan(10_000);
    expect((await runCli(['resume', '--campaign', campaignId], p.env)).stdout).toBe(`${campaignId} was not paused\n`);
  });

  it('cancels a campaign\'s calls that have not rung yet and leaves ended calls alone', async () => {
    const campaignId = 'cancel-me';
    const ended = await p.enqueue({ phoneNumber: '+14155558100', campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, ended))?.state === 'in_call' ? true : undefined));
    await p.store.applyTerminal({ callId: ended, campaignId, outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() });
    // delayed calls: still in the queue when the campaign is canceled
    const later = [
      await p.enqueue({ phoneNumber: '+14155558101', campaignId, notBefore: Date.now() + 60_000 }),
      await p.enqueue({ phoneNumber: '+14155558102', campaignId, notBefore: Date.now() + 60_000 }),
    ];
    const run = await runCli(['cancel', '--campaign', campaignId], p.env);
    expect(run).toMatchObject({ code: 0, stdout: 'canceled 2, in flight (not canceled) 0, already ended 1\n' });
    for (const callId of later) {
      expect(await p.store.get(campaignId, callId)).toMatchObject({ state: 'terminal', outcome: 'canceled' });
      expect(await p.calls.getJob(callId)).toBeUndefined();
    }
    const counters = await p.store.counters(campaignId);
    expect(counters).toEqual({ total: 3, terminal: 3, undialed: 2, byOutcome: { answered: 1, canceled: 2 } });
  });

  it('does not cancel a call that is ringing, and a consumer never dials a call canceled under it', async () => {
    const campaignId = 'cancel-race';
    p.sim.network.setBehavior('+14155558200', { type: 'answer', afterMs: 800 });
    const ringing = await p.enqueue({ phoneNumber: '+14155558200', campaignId });
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === '+14155558200') ? true : undefined));
    const summary = await cancelCalls(p.redis, p.config.queuePrefix, { campaignId, callIds: [ringing, 'no-such-call'] });
    expect(summary).toEqual({ canceled: [], inFlight: [ringing], alreadyEnded: [], unknown: ['no-such-call'] });

    // a canceled call whose job is still in the queue (say it was locked) is found ended and never dialed
    await p.dialers[0]?.worker.pause();
    const queued = await p.enqueue({ phoneNumber: '+14155558201', campaignId });
    await p.store.applyTerminal({ callId: queued, campaignId, outcome: 'canceled', reportedBy: 'operator', endedAt: Date.now() });
    p.dialers[0]?.worker.resume();
    await waitFor(async () => ((await p.calls.getJob(queued).then((j) => j?.getState())) === 'completed' ? true : undefined));
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155558201')).toHaveLength(0);
  });

  it('cancels a call whose consumer is waiting for its CPS slot, and that consumer dials nothing', async () => {
    const campaignId = 'cancel-waiting';
    // take the next 1.5 s of pacing slots (DIAL_CPS=50 in this pipeline): the consumer begins the attempt, then waits
    const slotsAhead = 75;
    const limiter = new DialRateLimiter(p.redis, p.store.keys.dialWindow(), 50);
    for (let i = 0; i < slotsAhead; i++) await limiter.reserve();
    const waiting = await p.enqueue({ phoneNumber: '+14155558202', campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, waiting))?.state === 'dialing' ? true : undefined), 5000, 'attempt begun');

    const summary = await cancelCalls(p.redis, p.config.queuePrefix, { campaignId, callIds: [waiting] });
    expect(summary).toEqual({ canceled: [waiting], inFlight: [], alreadyEnded: [], unknown: [] });
    await waitFor(async () => ((await p.calls.getJob(waiting).then((j) => j?.getState())) === 'completed' ? true : undefined), 10_000, 'job done');
    expect(await p.store.get(campaignId, waiting)).toMatchObject({ state: 'terminal', outcome: 'canceled', attempts: 1 });
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155558202')).toHaveLength(0);
  });

  it('does not cancel a call the agent is dialing itself (its dial is sent at once)', async () => {
    const campaignId = 'cancel-agent-dial';
    const call = { callId: 'agent-dials-1', campaignId, phoneNumber: '+14155558203', metadata: {} };
    await p.store.beginAttempt(call, 1, 'call-agent-dials-1-1', { dialSent: true });
    const summary = await cancelCalls(p.redis, p.config.queuePrefix, { campaignId, callIds: [call.callId] });
    expect(summary).toEqual({ canceled: [], inFlight: [call.callId], alreadyEnded: [], unknown: [] });
    expect(await p.store.get(campaignId, call.callId)).toMatchObject({ state: 'dialing' });
  });
});
