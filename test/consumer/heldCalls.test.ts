/**
 * Why each held call waits, recorded per call by the consumer (src/core/heldCalls.ts): a campaign's paused calls and
 * calls waiting for a line under DIAL_MAX_ACTIVE_CALLS are recorded with their reason, cleared when they dial, end or
 * are canceled, and `report --watch` (WatchReader) shows the recorded reasons with how many calls each holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { HeldCalls } from '../../src/core/heldCalls.js';
import { systemClock } from '../../src/core/time.js';
import { cancelCalls } from '../../src/producer/cancelCalls.js';
import { pauseCampaign, resumeCampaign } from '../../src/producer/pauseCampaign.js';
import { WatchReader } from '../../src/results/report/watchView.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

const LINES = 1;
let p: TestPipeline;
let held: HeldCalls;

beforeAll(async () => {
  // each call rings 1 s and is busy, once; one outbound line for every campaign
  p = await startTestPipeline('held-calls', {
    dialers: 0,
    network: { default: { type: 'busy', afterMs: 1000 } },
    env: { DIAL_MAX_ATTEMPTS: '1', DIAL_MAX_ACTIVE_CALLS: String(LINES), DIAL_RINGING_TIMEOUT_S: '5' },
  });
  held = new HeldCalls(p.redis, p.config.queuePrefix, systemClock);
});
afterAll(async () => {
  await p.close();
});

const watch = (campaignId: string) =>
  new WatchReader(p.redis, p.store, new CampaignStore(p.redis, p.config.queuePrefix, systemClock), campaignId, { prefix: p.config.queuePrefix, timeZone: 'UTC' }, systemClock);
const reasonsOf = async (campaignId: string) => (await held.list(campaignId)).map((h) => h.reason).sort();

describe('held calls, recorded per call', () => {
  it('writes a call’s reason only when it changes, and clears it', async () => {
    expect(await held.hold('held-unit', 'c-1', 'window')).toBe(true);
    expect(await held.hold('held-unit', 'c-1', 'window')).toBe(false);
    expect(await held.hold('held-unit', 'c-1', 'paused')).toBe(true);
    expect(await held.list('held-unit')).toEqual([{ callId: 'c-1', reason: 'paused', since: expect.any(Number) }]);
    await held.release('held-unit', ['c-1']);
    expect(await held.list('held-unit')).toEqual([]);
  });

  it('records paused calls and calls waiting for a line, shows them in --watch, and clears them as they dial, end or are canceled', async () => {
    await pauseCampaign(p.redis, p.config.queuePrefix, 'held-paused');
    const paused = [await p.enqueue({ phoneNumber: '+14155553001', campaignId: 'held-paused' }), await p.enqueue({ phoneNumber: '+14155553002', campaignId: 'held-paused' })];
    const busy = [];
    for (let i = 0; i < 3; i++) busy.push(await p.enqueue({ phoneNumber: `+1415555310${i}`, campaignId: 'held-lines' }));
    await p.startDialer();

    expect(await waitFor(async () => ((await reasonsOf('held-paused')).length === 2 ? reasonsOf('held-paused') : undefined), 10_000, 'paused calls recorded')).toEqual(['paused', 'paused']);
    const pausedView = await watch('held-paused').read();
    expect(pausedView.held).toContainEqual({ reason: 'campaign paused (dialer resume releases them)', calls: 2 });

    // one line for three calls: while one rings the others are recorded as waiting for a line
    await waitFor(async () => ((await reasonsOf('held-lines')).includes('active_calls') ? true : undefined), 10_000, 'a call recorded waiting for a line');
    const linesView = await watch('held-lines').read();
    expect(linesView.held.find((h) => h.reason === `all ${LINES} outbound lines in use (DIAL_MAX_ACTIVE_CALLS)`)?.calls).toBeGreaterThanOrEqual(1);
    for (const callId of busy) expect((await p.waitForOutcome('held-lines', callId, 20_000)).outcome).toBe('busy');
    expect(await held.list('held-lines')).toEqual([]);

    const [canceled, resumed] = paused;
    await cancelCalls(p.redis, p.config.queuePrefix, { campaignId: 'held-paused', callIds: [canceled ?? ''] });
    expect((await held.list('held-paused')).map((h) => h.callId)).toEqual([resumed]);
    await resumeCampaign(p.redis, p.config.queuePrefix, 'held-paused');
    expect((await p.waitForOutcome('held-paused', resumed ?? '', 20_000)).outcome).toBe('busy');
    expect(await held.list('held-paused')).toEqual([]);
    expect((await watch('held-paused').read()).held).toEqual([]);
  }, 60_000);
});

describe('calls waiting for their DIAL_CPS slot', () => {
  it('are recorded as held for cps while their slot is a second or more away, and cleared once they dial', async () => {
    // one call a second, five at once: the later calls' slots are seconds away
    const slow = await startTestPipeline('held-cps', {
      dialers: 0,
      network: { default: { type: 'busy', afterMs: 50 } },
      env: { DIAL_MAX_ATTEMPTS: '1', DIAL_CPS: '1', DIAL_CONCURRENCY: '5' },
    });
    try {
      const calls = [];
      for (let i = 0; i < 5; i++) calls.push(await slow.enqueue({ phoneNumber: `+1415555320${i}`, campaignId: 'held-cps' }));
      await slow.startDialer();
      const cpsHeld = new HeldCalls(slow.redis, slow.config.queuePrefix, systemClock);
      const seen = await waitFor(async () => {
        const reasons = (await cpsHeld.list('held-cps')).map((h) => h.reason);
        return reasons.includes('cps') ? reasons : undefined;
      }, 10_000, 'a call recorded waiting for its CPS slot');
      expect(seen.every((r) => r === 'cps')).toBe(true);
      for (const callId of calls) expect((await slow.waitForOutcome('held-cps', callId, 20_000)).outcome).toBe('busy');
      // cleared without being awaited by the dial (nothing may stand between the claim and the write): soon after
      await waitFor(async () => ((await cpsHeld.list('held-cps')).length === 0 ? true : undefined), 5_000, 'cps holds cleared');
    } finally {
      await slow.close();
    }
  }, 60_000);
});

describe('holds that no longer hold', () => {
  it('a call waiting for its DIAL_CPS slot when its consumer drains goes back to the queue with no hold left', async () => {
    const draining = await startTestPipeline('held-drain', {
      dialers: 0,
      network: { default: { type: 'busy', afterMs: 50 } },
      env: { DIAL_MAX_ATTEMPTS: '1', DIAL_CPS: '0.2', DIAL_CONCURRENCY: '5' },
    });
    try {
      for (let i = 0; i < 4; i++) await draining.enqueue({ phoneNumber: `+1415555330${i}`, campaignId: 'held-drain' });
      const dialer = await draining.startDialer();
      const drainHeld = new HeldCalls(draining.redis, draining.config.queuePrefix, systemClock);
      await waitFor(async () => ((await drainHeld.list('held-drain')).filter((h) => h.reason === 'cps').length >= 2 ? true : undefined), 10_000, 'calls recorded waiting for their CPS slot');
      await dialer.close(); // drains: the calls still waiting for a slot go back to the queue, undialed
      expect((await draining.calls.getJobs(['wait', 'prioritized'])).length).toBeGreaterThanOrEqual(2);
      expect(await drainHeld.list('held-drain')).toEqual([]);
    } finally {
      await draining.close();
    }
  }, 60_000);

  it('resume clears the campaign’s paused holds at once, with no consumer running, and leaves other holds alone', async () => {
    await held.hold('held-resume', 'c-paused-1', 'paused');
    await held.hold('held-resume', 'c-paused-2', 'paused');
    await held.hold('held-resume', 'c-window', 'window');
    await pauseCampaign(p.redis, p.config.queuePrefix, 'held-resume');
    await resumeCampaign(p.redis, p.config.queuePrefix, 'held-resume');
    expect((await held.list('held-resume')).map((h) => `${h.callId}:${h.reason}`)).toEqual(['c-window:window']);
  });
});
