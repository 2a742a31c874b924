import { LATE_SLOT_MAX_MS } from '../../src/consumer/dialAttempt.js';
import type { ChildProcess } from 'node:child_process';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { OUTCOME_WATCHDOG_QUEUE } from '../../src/core/outcomeWatchdogQueue.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import {
  overLimitWindowsUnexplained,
  STAMP_AFTER_STALL_SLACK_MS,
  STAMP_STALL_MIN_MS,
  watchLoopStalls,
  type LoopStall,
} from '../helpers/rollingWindow.js';
import { waitFor } from '../helpers/waitFor.js';
import { startConsumerProcess } from '../helpers/consumerProcess.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';

/** How long a drain may take while two calls wait for CPS slots 1 s and 2 s away (it must not wait for them). */
const DRAIN_WITHOUT_SLOTS_MAX_MS = 1_600;
const campaignId = 'limits';
let pipeline: TestPipeline | undefined;
let child: ChildProcess | undefined;

afterEach(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
  await pipeline?.close();
  pipeline = undefined;
});

const numbers = (count: number, base: number) => Array.from({ length: count }, (_, i) => `+1415556${String(base + i).padStart(4, '0')}`);


/** The least share of DIAL_CPS the rate check accepts from in-process consumers on a loaded machine. */
const MIN_RATE_UNDER_LOAD = 0.25;
/**
 * How long the rate test waits for its 40 calls (4 s at the limit). Two full test runs at once on 2 cores starved
 * this process so that they were not all answered in 20 s; the limit check, the point of the test, then never ran.
 */
const ALL_ANSWERED_WITHIN_MS = 60_000;

/** How late a stamp taken at `t` may be because of a stall that ended just before it (0 when none did). */
function lateAfterStall(t: number, stalls: readonly LoopStall[]): number {
  const before = stalls.filter((s) => t >= s.end && t - s.end <= Math.max(STAMP_AFTER_STALL_SLACK_MS, s.end - s.start));
  return Math.max(0, ...before.map((s) => s.end - s.start + STAMP_AFTER_STALL_SLACK_MS));
}

/** Milliseconds of `stalls` (the probe's, each [start, end)) that fall within [from, to]. */
function stalledWithin(stalls: readonly LoopStall[], from: number, to: number): number {
  return stalls.reduce((sum, s) => sum + Math.max(0, Math.min(s.end, to) - Math.max(s.start, from)), 0);
}

describe('dial limits and crash safety', () => {
  it('never exceeds DIAL_CPS in any rolling second across two consumers, and nearly uses it', async () => {
    const baseline = openNetworkHandles().length;
    pipeline = await startTestPipeline('cps', {
      env: { DIAL_CPS: '10', DIAL_CONCURRENCY: '20' },
      dialers: 2,
      network: { default: { type: 'answer', afterMs: 50 } },
    });
    const p = pipeline;
    const list = numbers(40, 0);
    // the simulator runs in this process: a stall of this process delays its stamps, not the dials (see watchLoopStalls)
    const probe = watchLoopStalls(STAMP_STALL_MIN_MS);
    await p.producer.enqueueCalls(list.map((phoneNumber) => ({ phoneNumber, campaignId })));
    await waitFor(() => (p.sim.calls.filter((c) => c.result === 'answered').length >= list.length ? true : undefined), ALL_ANSWERED_WITHIN_MS);
    const stalls = probe.stop();
    const starts = p.sim.calls.map((c) => c.receivedAt);
    expect(overLimitWindowsUnexplained(starts, 1000, 10, stalls, STAMP_AFTER_STALL_SLACK_MS), `stalls: ${JSON.stringify(stalls)}`).toEqual([]);
    // 40 starts evenly spaced at 10/s span 39 intervals (3.9 s; the pacing uses 96.6 % of the limit). When this
    // process stalls (other test files on 2 cores) calls that wake too late for their slot take a new one, so the
    // rate here depends on the machine's load: 0.97 alone, 0.49 with six test files at once. This test asks only that
    // the pacing is not grossly broken (a quarter of the limit: a slot per second instead of ten would fail it); the
    // ≥ 95 % goal is measured by bench:cps, alone and beside a CPU hog (README, issue 13).
    const span = Math.max(...starts) - Math.min(...starts);
    // The first stamp may be late by a stall just before it (as in overLimitWindowsUnexplained), and the first dial
    // itself may go out up to LATE_SLOT_MAX_MS after its slot by design (a consumer that woke a little late keeps its
    // slot rather than give way): either shortens the span without any start coming early. Two loaded runs of the
    // whole suite (six files at once on 2 cores) read 3896 and 3881 ms with no stall long enough to be seen.
    expect(span + lateAfterStall(Math.min(...starts), stalls) + LATE_SLOT_MAX_MS, `stalls: ${JSON.stringify(stalls)}`).toBeGreaterThanOrEqual(3900);
    // time this process (simulator and both consumers) was stalled during the campaign could dial nothing
    const stalledMs = stalledWithin(stalls, Math.min(...starts), Math.max(...starts));
    expect(span - stalledMs, `span ${span} ms, of which stalled ${stalledMs} ms`).toBeLessThan(3900 / MIN_RATE_UNDER_LOAD);
    await p.close();
    pipeline = undefined;
    await expectNoLeakedHandles(baseline);
  }, 2 * ALL_ANSWERED_WITHIN_MS);

  it('caps calls ringing at once at DIAL_CONCURRENCY per process', async () => {
    pipeline = await startTestPipeline('concurrency', {
      env: { DIAL_CPS: '100', DIAL_CONCURRENCY: '3' },
      network: { default: { type: 'answer', afterMs: 300 } },
    });
    const p = pipeline;
    let ringing = 0;
    let maxRinging = 0;
    p.sim.events.on('call_dialing', () => {
      ringing += 1;
      maxRinging = Math.max(maxRinging, ringing);
    });
    p.sim.events.on('call_answered', () => {
      ringing -= 1;
    });
    const list = numbers(12, 100);
    await p.producer.enqueueCalls(list.map((phoneNumber) => ({ phoneNumber, campaignId })));
    await waitFor(() => (p.sim.calls.filter((c) => c.result === 'answered').length >= list.length ? true : undefined), 20_000);
    expect(maxRinging).toBe(3);
  });

  it('drains on close: a ringing call finishes before the worker stops, nothing half-made', async () => {
    pipeline = await startTestPipeline('drain', { network: { default: { type: 'answer', afterMs: 800 } } });
    const p = pipeline;
    const [number] = numbers(1, 200);
    const callId = await p.enqueue({ phoneNumber: number as string, campaignId });
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number) ? true : undefined));
    const closedAt = Date.now();
    await p.dialers[0]?.close();
    const record = await p.store.get(campaignId, callId);
    expect(record?.state).toBe('in_call');
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(500);
    expect(await (await p.calls.getJob(callId))?.getState()).toBe('completed');
  });

  it('on drain, returns calls still waiting for a CPS slot to the queue without spending an attempt', async () => {
    pipeline = await startTestPipeline('drain-slots', { env: { DIAL_CPS: '1' }, network: { default: { type: 'answer', afterMs: 50 } } });
    const p = pipeline;
    const list = numbers(3, 600);
    const { enqueued } = await p.producer.enqueueCalls(list.map((phoneNumber) => ({ phoneNumber, campaignId })));
    await waitFor(() => (p.sim.calls.length === 1 ? true : undefined));
    await waitFor(async () => ((await p.calls.getActiveCount()) === 2 ? true : undefined)); // two wait for slots
    const started = Date.now();
    await p.dialers[0]?.close();
    // did not sit out the next slots, 1 s and 2 s after the first call: a drain that waited for them takes about 2 s
    // from here, one that does not takes tens of ms (1.1 s seen with two full test runs at once on a slow day)
    expect(Date.now() - started).toBeLessThan(DRAIN_WITHOUT_SLOTS_MAX_MS);
    expect(p.sim.calls).toHaveLength(1);
    const waiting = await p.calls.getJobs(['wait', 'prioritized']);
    // the two not dialed (which call took the first slot is the consumers' race, not FIFO, on a loaded machine)
    const dialedNumber = p.sim.calls[0]?.phoneNumber;
    const notDialed = enqueued.filter((_, i) => list[i] !== dialedNumber).map((e) => e.callId);
    expect(notDialed).toHaveLength(2);
    expect(waiting.map((j) => j.id).sort()).toEqual(notDialed.sort());
    for (const job of waiting) expect(job.attemptsMade).toBe(0);
    await p.startDialer(); // a new consumer dials them, as attempt 1
    await waitFor(() => (p.sim.calls.length === 3 ? true : undefined), 15_000);
    expect(p.sim.calls.map((c) => c.room.endsWith('-1'))).toEqual([true, true, true]);
  });

  it('does not ring the phone again when a consumer is killed (SIGKILL) while it rings', async () => {
    pipeline = await startTestPipeline('sigkill', {
      dialers: 0,
      env: { DIAL_LOCK_DURATION_MS: '1000', DIAL_RINGING_TIMEOUT_S: '10' },
    });
    const p = pipeline;
    const [number] = numbers(1, 300);
    p.sim.network.setBehavior(number as string, { type: 'answer', afterMs: 3000 });
    child = (await startConsumerProcess(p.env, 20_000)).child;
    const callId = await p.enqueue({ phoneNumber: number as string, campaignId });
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number && c.status === 'ringing') ? true : undefined), 10_000, 'phone ringing');
    child.kill('SIGKILL');
    await new Promise((resolve) => child?.once('exit', resolve));

    await p.startDialer(); // another consumer takes the stalled job over
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    }, 20_000, 'call taken over and answered');
    const calls = p.sim.calls.filter((c) => c.phoneNumber === number);
    expect(calls).toHaveLength(1); // rang once
    expect(calls[0]?.clientDisconnected).toBe(true);
    expect(calls[0]?.result).toBe('answered');
    expect(record.attempts).toBe(1);
    expect(p.sim.deletedRooms).not.toContain(`call-${callId}-1`);
    // one read that sees the job finished also carries its return value
    const job = await waitFor(async () => {
      const j = await p.calls.getJob(callId);
      return j?.finishedOn ? j : undefined;
    });
    expect(job.returnvalue).toMatchObject({ status: 'answered', recovered: true });
  });

  it('ends a connected call as failed when its agent never reports an outcome', async () => {
    pipeline = await startTestPipeline('watchdog', { env: { CALL_OUTCOME_TIMEOUT_S: '1' } });
    const p = pipeline;
    const [number] = numbers(1, 400);
    p.sim.network.setBehavior(number as string, { type: 'answer', afterMs: 50 });
    const callId = await p.enqueue({ phoneNumber: number as string, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined));
    const record = await p.waitForOutcome(campaignId, callId, 10_000);
    expect(record).toMatchObject({ outcome: 'failed', reason: 'no outcome reported by the agent within 1 s of the answer' });
  });

  it('leaves a call the agent reported alone when its watchdog fires', async () => {
    pipeline = await startTestPipeline('watchdog-ok', { env: { CALL_OUTCOME_TIMEOUT_S: '1' } });
    const p = pipeline;
    const [number] = numbers(1, 500);
    p.sim.network.setBehavior(number as string, { type: 'answer', afterMs: 50 });
    const callId = await p.enqueue({ phoneNumber: number as string, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined));
    await p.store.applyTerminal({ callId, campaignId, outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() });
    // the check fires 1 s after the answer: wait until it has run, and until whatever it reported has been applied
    const checks = new Queue(OUTCOME_WATCHDOG_QUEUE, { connection: p.redis, prefix: p.config.queuePrefix });
    const results = new Queue(CALL_RESULTS_QUEUE, { connection: p.redis, prefix: p.config.queuePrefix });
    try {
      await waitFor(async () => ((await checks.getJob(callId))?.finishedOn ? true : undefined), 10_000, 'watchdog check ran');
      await waitFor(async () => {
        const report = await results.getJob(callId);
        return report === undefined || report.finishedOn ? true : undefined;
      }, 10_000, 'any report of the check applied');
    } finally {
      await checks.close();
      await results.close();
    }
    expect(await p.store.get(campaignId, callId)).toMatchObject({ outcome: 'answered' });
  });
});
