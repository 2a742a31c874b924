import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { CANCEL_REASON, cancelCalls } from '../../src/producer/cancelCalls.js';
import { dispatchMetadataSchema } from '../../src/core/queues.js';
import { systemClock } from '../../src/core/time.js';
import { campaignReport } from '../../src/results/campaignReport.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { waitFor } from '../helpers/waitFor.js';

const campaignId = 'pipeline';
/** How late a retry may reach the simulator after its delay on a loaded machine, and still count as on time. */
const RETRY_LATE_SLACK_MS = 10_000;
let p: TestPipeline;
let baseline = 0;
let nextNumber = 0;
/** A fresh valid number per test so scripted behaviours never collide. */
const freshNumber = () => `+1415555${String(1000 + nextNumber++).padStart(4, '0')}`;

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  p = await startTestPipeline('pipeline');
});

afterAll(async () => {
  await p.close();
  await expectNoLeakedHandles(baseline);
});

const callsTo = (number: string) => p.sim.calls.filter((c) => c.phoneNumber === number);

describe('dial pipeline against the LiveKit simulator', () => {
  it('dispatches the agent into a fresh room, then rings the number and waits for the answer', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 200 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId, metadata: { first_name: 'Ann' }, agentProfile: 'survey' });
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    });
    expect(record.attempts).toBe(1);
    const room = `call-${callId}-1`;
    const dispatch = p.sim.dispatches.find((d) => d.room === room);
    expect(dispatch?.agentName).toBe('telephony-agent');
    const metadata = dispatchMetadataSchema.parse(JSON.parse(dispatch?.metadata ?? '{}'));
    expect(metadata).toMatchObject({
      phone_number: number,
      call_id: callId,
      campaign_id: campaignId,
      attempt: 1,
      dialed_by: 'consumer',
      sip_participant_identity: `sip-${callId}`,
      agent_profile: 'survey',
      metadata: { first_name: 'Ann' },
    });
    const [call] = callsTo(number);
    expect(call).toMatchObject({ room, identity: `sip-${callId}`, trunkId: p.sim.outboundTrunkId, result: 'answered' });
    expect(call?.options.waitUntilAnswered).toBe(true);
    expect(call?.options.ringingTimeoutMs).toBe(1000);
    // dispatch first, so the agent is there when the callee picks up
    expect(dispatch?.createdAtMs ?? Infinity).toBeLessThanOrEqual(call?.receivedAt ?? 0);
    // the record turns in_call a moment before the job completes
    await waitFor(async () => ((await p.calls.getJob(callId).then((j) => j?.getState())) === 'completed' ? true : undefined));
    expect(p.sim.deletedRooms).not.toContain(room);
  });

  it('dials the main line of a number with an extension and presses the extension as DTMF after the answer', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 100 });
    const callId = await p.enqueue({ phoneNumber: `${number} x136`, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined));
    const [call] = callsTo(number);
    expect(call?.options.dtmf).toMatch(/^w+136$/);
  });

  it.each([
    ['not_found', 404, 'invalid_number'],
    ['decline', 603, 'declined'],
    ['unwanted', 607, 'declined'],
    ['rejected', 608, 'declined'],
  ] as const)('ends a %s number (SIP %i) as %s after one attempt, without retrying', async (type, sip, outcome) => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const record = await p.waitForOutcome(campaignId, callId);
    expect(record).toMatchObject({ outcome, attempts: 1, sipStatusCode: sip });
    expect(callsTo(number)).toHaveLength(1);
    expect(p.sim.deletedRooms).toContain(`call-${callId}-1`);
    // the outcome is reported just before the job fails
    await waitFor(async () => ((await p.calls.getJob(callId).then((j) => j?.getState())) === 'failed' ? true : undefined));
  });

  it('ends an address-incomplete number (484) as invalid_number', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'sip_error', sipStatus: 484, reason: 'Address Incomplete' });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    expect(await p.waitForOutcome(campaignId, callId)).toMatchObject({ outcome: 'invalid_number', sipStatusCode: 484 });
    expect(callsTo(number)).toHaveLength(1);
  });

  it('ends a trunk authentication rejection (SIP 403) as failed without retrying', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'trunk_auth_failure', sipStatus: 403 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    expect(await p.waitForOutcome(campaignId, callId)).toMatchObject({ outcome: 'failed', sipStatusCode: 403, attempts: 1 });
    expect(callsTo(number)).toHaveLength(1);
  });

  it('retries a busy number up to DIAL_MAX_ATTEMPTS, then ends it as busy, deleting each attempt room', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'busy' });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const record = await p.waitForOutcome(campaignId, callId);
    expect(record).toMatchObject({ outcome: 'busy', attempts: 3, sipStatusCode: 486, sipStatus: 'Busy Here' });
    expect(callsTo(number).map((c) => c.room)).toEqual([1, 2, 3].map((n) => `call-${callId}-${n}`));
    for (const n of [1, 2, 3]) expect(p.sim.deletedRooms).toContain(`call-${callId}-${n}`);
    expect(record.attemptLog.map((a) => a.result)).toEqual(['busy', 'busy', 'busy']);
  });

  it('treats a call that rang out until the ringing timeout as no_answer, not busy, even when it came back as 486', async () => {
    const number = freshNumber();
    p.sim.network.setRingOut('busy');
    try {
      p.sim.network.setBehavior(number, { type: 'ring_out' });
      const callId = await p.enqueue({ phoneNumber: number, campaignId });
      const record = await p.waitForOutcome(campaignId, callId, 20_000);
      expect(record).toMatchObject({ outcome: 'no_answer', attempts: 3, sipStatusCode: 486 });
    } finally {
      p.sim.network.setRingOut('timeout');
    }
  });

  it('treats LiveKit\'s current ring-out (408 "sip request timed out", no SIP status) as no_answer, attempt spent', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { sequence: [{ type: 'ring_out' }, { type: 'answer', afterMs: 100 }] });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 15_000);
    const record = await p.store.get(campaignId, callId);
    expect(record?.attemptLog.map((a) => a.result)).toEqual(['no_answer', 'answered']);
    expect(callsTo(number)[0]).toMatchObject({ httpStatus: 408, sipStatusCode: undefined });
  });

  it('treats temporarily unavailable (480) as no_answer and retries it', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { sequence: [{ type: 'unavailable' }, { type: 'answer', afterMs: 100 }] });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined));
    const record = await p.store.get(campaignId, callId);
    expect(record?.attemptLog.map((a) => [a.result, a.sipStatusCode])).toEqual([
      ['no_answer', 480],
      ['answered', undefined],
    ]);
  });

  it('retries a far-end 5xx and ends it as failed once attempts are used', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'server_error', sipStatus: 503, reason: 'Service Unavailable' });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    expect(await p.waitForOutcome(campaignId, callId)).toMatchObject({ outcome: 'failed', attempts: 3, sipStatusCode: 503 });
    expect(callsTo(number)).toHaveLength(3);
  });

  it('retries a busy number after the busy delay and connects on the next attempt', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { sequence: [{ type: 'busy' }, { type: 'answer', afterMs: 100 }] });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined));
    const [first, second] = callsTo(number);
    const gap = (second?.receivedAt ?? 0) - (first?.endedAt ?? first?.receivedAt ?? 0);
    // DIAL_RETRY_DELAY_S=0.2 plus 0–20 % jitter, never sooner; above, the slack of a loaded machine (2.9 s seen with two
    // full test runs at once), still far from the default delay (DEFAULT_RETRY_DELAY_S, 300 s)
    expect(gap).toBeGreaterThanOrEqual(200);
    expect(gap).toBeLessThan(RETRY_LATE_SLACK_MS);
    expect(second?.room).toBe(`call-${callId}-2`);
  });

  it('backs the queue off on platform trouble (503, no SIP status) without spending the attempt', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { platformFailures: 1, behavior: { type: 'answer', afterMs: 100 } });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    }, 15_000);
    expect(record.attempts).toBe(1); // still attempt 1: the platform error did not count
    // the platform failed the first request with HTTP 503 and no SIP status; the second one rang and was answered
    expect(callsTo(number).map((c) => [c.result, c.httpStatus, c.sipStatusCode])).toEqual([
      ['failed', 503, undefined],
      ['answered', undefined, undefined],
    ]);
    expect(record.attemptLog.map((a) => a.result)).toEqual(['platform_error', 'answered']);
    // both requests were attempt 1: the same room
    expect(callsTo(number).map((c) => c.room)).toEqual([`call-${callId}-1`, `call-${callId}-1`]);
  });

  it('ends an undialed call whose expiry passed as expired, without ringing it', async () => {
    const number = freshNumber();
    const callId = await p.enqueue({ phoneNumber: number, campaignId, expiresAt: Date.now() - 1000 });
    expect(await p.waitForOutcome(campaignId, callId)).toMatchObject({ outcome: 'expired' });
    expect(callsTo(number)).toHaveLength(0);
  });

  it('ends an undialed call whose expiry passed as expired, saying when it expired', async () => {
    const expiresAt = Date.now() - 1000;
    const callId = await p.enqueue({ phoneNumber: freshNumber(), campaignId, expiresAt });
    const record = await p.waitForOutcome(campaignId, callId);
    expect(record.reason).toBe(`it expired at ${new Date(expiresAt).toISOString()}, before it could be dialed`);
  });

  it('ends a busy call as expired at once when its next attempt would come only after it expires', async () => {
    const slowRetries = 'pipeline-slow-retries';
    await new CampaignStore(p.redis, p.config.queuePrefix, systemClock).create({ id: slowRetries, retry_delays_s: { busy: 3600 } });
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'busy' });
    const expiresAt = Date.now() + 10 * 60_000;
    const callId = await p.enqueue({ phoneNumber: number, campaignId: slowRetries, expiresAt });
    // no waiting an hour for a retry the gates would end: the call ends right after its one attempt
    const record = await p.waitForOutcome(slowRetries, callId, 5_000);
    expect(record).toMatchObject({ outcome: 'expired', attempts: 1 });
    expect(record.reason).toBe(`no attempt 2 before its expiry at ${new Date(expiresAt).toISOString()} (attempt 1 ended busy, SIP 486)`);
    expect(record.attemptLog.map((a) => a.result)).toEqual(['busy']);
    expect(callsTo(number)).toHaveLength(1);
  });

  it('does not try again a call canceled while its attempt rang: the unanswered attempt ends it canceled', async () => {
    const number = freshNumber();
    // it rings until the ringing timeout (DIAL_RINGING_TIMEOUT_S=1): the cancel comes within that second
    p.sim.network.setBehavior(number, { type: 'ring_out' });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(() => (callsTo(number).length === 1 ? true : undefined), 10_000, 'the first attempt ringing');
    const summary = await cancelCalls(p.redis, p.config.queuePrefix, { campaignId, callIds: [callId] });
    expect(summary.inFlight).toEqual([callId]);
    const record = await p.waitForOutcome(campaignId, callId);
    expect(record).toMatchObject({ outcome: 'canceled', reason: CANCEL_REASON, attempts: 1 });
    expect(record.attemptLog.map((a) => a.result)).toEqual(['no_answer']);
    expect(callsTo(number)).toHaveLength(1);
  });

  it("never dials an attempt again after LiveKit's request deadline (deadline_exceeded before the ringing timeout): the phone may have rung", async () => {
    const number = freshNumber();
    // a SIP server took the request and never answered it in time: its participant stays dialing meanwhile
    p.sim.network.setBehavior(number, { sequence: [{ type: 'request_timeout', afterMs: 300 }, { type: 'answer', afterMs: 100 }] });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 15_000, 'the second attempt answered');
    // one dial per attempt: attempt 1 spent (its room deleted), attempt 2 after the retry delay
    expect(callsTo(number).map((c) => c.room)).toEqual([`call-${callId}-1`, `call-${callId}-2`]);
    expect(p.sim.deletedRooms).toContain(`call-${callId}-1`);
    const record = await p.store.get(campaignId, callId);
    expect(record?.attemptLog.map((a) => a.result)).toEqual(['failed', 'answered']);
  });

  it('fails a malformed job on the queue with a clear error while other jobs go on', async () => {
    const bad = await p.calls.add('dial', { callId: 'bad-job', campaignId, phoneNumber: 'not a number' }, { jobId: 'bad-job' });
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 50 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined));
    await waitFor(async () => ((await bad.getState()) === 'failed' ? true : undefined));
    const failed = await p.calls.getJob('bad-job');
    expect(failed?.failedReason).toMatch(/malformed call job: .*phoneNumber/);
    expect(await p.waitForOutcome(campaignId, 'bad-job')).toMatchObject({ outcome: 'failed' });
  });

  it('dials a job another service pushed straight onto `calls` in the guide\'s snake_case', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 50 });
    const job = await p.calls.add('dial', { phone_number: number, campaign_id: campaignId, metadata: { first_name: 'Lee' } });
    const callId = `job-${job.id}`; // BullMQ's numeric id, made a valid call id
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined));
    const dispatch = p.sim.dispatches.find((d) => d.room === `call-${callId}-1`);
    expect(JSON.parse(dispatch?.metadata ?? '{}')).toMatchObject({ phone_number: number, call_id: callId, metadata: { first_name: 'Lee' } });
    const report = await p.store.counters(campaignId);
    expect(report.total).toBeGreaterThan(0);
  });

  it.each([
    ['written into the number', (n: string) => ({ phone_number: `${n.replace('+1', '+1 ')};ext=136`, campaign_id: campaignId })],
    ['in the extension field', (n: string) => ({ phoneNumber: n, campaignId, extension: '136' })],
  ])('keeps the extension of a pushed job (%s) on its record and in the exports, as for an enqueued one', async (_how, payload) => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 50 });
    const job = await p.calls.add('dial', payload(number));
    const callId = `job-${job.id}`;
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    });
    expect(callsTo(number)[0]?.options.dtmf).toMatch(/^w+136$/);
    expect(record.phoneNumber).toBe(`${number};ext=136`);
    const line = campaignReport(campaignId, await p.store.counters(campaignId), [record]).calls[0];
    expect(line).toMatchObject({ phoneNumber: number, extension: '136' });
  });

  it('keeps the extension of a pushed job that ends before any attempt (expired)', async () => {
    const number = freshNumber();
    const job = await p.calls.add('dial', { phone_number: `${number} x137`, campaign_id: campaignId, expiresAt: Date.now() - 1000 });
    const record = await p.waitForOutcome(campaignId, `job-${job.id}`);
    expect(record).toMatchObject({ outcome: 'expired', phoneNumber: `${number};ext=137` });
  });

  it('retries a pushed job without BullMQ attempts up to DIAL_MAX_ATTEMPTS', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'busy' });
    const job = await p.calls.add('dial', { phoneNumber: number });
    const record = await p.waitForOutcome('default', `job-${job.id}`);
    expect(record).toMatchObject({ outcome: 'busy', attempts: 3 });
    expect(callsTo(number).map((c) => c.room)).toEqual([1, 2, 3].map((n) => `call-job-${job.id}-${n}`));
  });
});
