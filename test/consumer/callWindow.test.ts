/** Calling windows in the dial worker: a call rings only inside its window, in the callee's time zone. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import { loadConfig } from '../../src/core/config.js';
import { clockReading, HOUR, type Clock } from '../../src/core/time.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

/** A clock that reads `wallTarget` now and runs at wall speed (BullMQ's delays still run on the wall clock). */
function clockAt(wallTarget: number): Clock {
  const shift = wallTarget - Date.now();
  return clockReading(() => Date.now() + shift);
}

const OPENING_DELAY_MS = 2500;
const campaignId = 'windows';
let p: TestPipeline;
const dialers: DialWorkerHandle[] = [];

beforeAll(async () => {
  p = await startTestPipeline('call-window', { dialers: 0, network: { default: { type: 'answer', afterMs: 10, callee: { kind: 'human' } } } });
});

afterAll(async () => {
  await Promise.all(dialers.map((d) => d.close(true)));
  await p.close();
});

async function dialerWith(clock: Clock, env: Record<string, string> = {}): Promise<DialWorkerHandle> {
  const dialer = await startDialWorker({ config: loadConfig({ ...p.env, ...env }), logger: silentLogger, clock });
  dialers.push(dialer);
  return dialer;
}

const rangFor = (number: string) => p.sim.calls.filter((c) => c.phoneNumber === number);

describe('calling windows', () => {
  it('a call outside its window does not ring and spends no attempt; it rings when the window opens', async () => {
    // Set just before the enqueue, the consumer's clock reads 08:59:57.5 in New York: the window opens 2.5 s later.
    const opening = Date.parse('2026-06-15T13:00:00Z'); // 09:00 EDT
    let shift = 0;
    const dialer = await dialerWith(clockReading(() => Date.now() + shift));
    const number = '+14155558001';
    shift = opening - OPENING_DELAY_MS - Date.now();
    const enqueuedAt = Date.now();
    const callId = await p.enqueue({ phoneNumber: number, campaignId, callWindow: { from: '09:00', to: '20:00', timeZone: 'America/New_York' } });

    await waitFor(async () => ((await p.calls.getJobState(callId)) === 'delayed' ? true : undefined), 5000, 'the call to wait');
    expect(rangFor(number)).toEqual([]);
    expect(await p.store.get(campaignId, callId)).toMatchObject({ state: 'queued', attempts: 0 });

    await waitFor(() => (rangFor(number).length > 0 ? true : undefined), 10_000, 'the call to ring');
    const rang = rangFor(number)[0];
    expect((rang?.receivedAt ?? 0) - enqueuedAt).toBeGreaterThanOrEqual(OPENING_DELAY_MS - 100);
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 5000, 'the answer');
    expect(await p.store.get(campaignId, callId)).toMatchObject({ attempts: 1 });
    await dialer.close(true);
  });

  it('DIAL_CALL_WINDOW applies to calls without a window; one whose window opens only after it expires ends as expired', async () => {
    // 20:00 UTC on a Monday, with a default window of 09:00-17:00 UTC on weekdays.
    const now = Date.parse('2026-06-15T20:00:00Z');
    const clock = clockAt(now);
    const dialer = await dialerWith(clock, { DIAL_CALL_WINDOW: '09:00-17:00', DIAL_CALL_DAYS: 'mon-fri', DIAL_TIME_ZONE: 'UTC' });

    const waiting = await p.enqueue({ phoneNumber: '+14155558002', campaignId });
    const expiring = await p.enqueue({ phoneNumber: '+14155558003', campaignId, expiresAt: clock.now() + HOUR });

    await waitFor(async () => ((await p.calls.getJobState(waiting)) === 'delayed' ? true : undefined), 5000, 'the call to wait');
    const job = await p.calls.getJob(waiting);
    // Delayed until Tuesday 09:00 UTC, 13 hours after the consumer's now.
    expect((job?.delay ?? 0) / HOUR).toBeCloseTo(13, 2);
    const expired = await p.waitForOutcome(campaignId, expiring);
    expect(expired).toMatchObject({ outcome: 'expired', attempts: 0 });
    expect(expired.reason).toMatch(/calling window \(09:00-17:00 UTC mon,tue,wed,thu,fri\) opens only after it expires/);
    expect(rangFor('+14155558002')).toEqual([]);
    expect(rangFor('+14155558003')).toEqual([]);
    await dialer.close(true);
  });
});
