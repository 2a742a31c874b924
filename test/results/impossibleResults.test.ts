/**
 * Forged or impossible results on `call-results` are refused by the record's state machine (terminalTransition,
 * applyTerminal.lua): each refusal logged once with its reason, its job failed, nothing written.
 */
import { Writable } from 'node:stream';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { MAX_TRANSCRIPT_BYTES, type CallResult } from '../../src/core/outcomes.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { MINUTE, systemClock } from '../../src/core/time.js';
import { buildCampaignReport } from '../../src/results/campaignReport.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const url = testRedisUrl();
const prefix = uniquePrefix('impossible');
const MB = 1024 * 1024;
const BIG_RESULT_TIMEOUT_MS = 120_000;
let baseline = 0;
let redis: Redis;
let store: CallStore;
/** call-results as another service sees it: anyone who can write to Redis can add a job. */
let resultsQueue: Queue;
let results: ResultsWorkerHandle;
/** Every log line the results worker wrote, parsed. */
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  redis = new Redis(url);
  store = new CallStore(redis, prefix, systemClock);
  resultsQueue = new Queue(CALL_RESULTS_QUEUE, { connection: redis, prefix });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  results = await startResultsWorker({ config: { redisUrl: url, queuePrefix: prefix, logLevel: 'info' }, logger: pino({ level: 'info' }, sink) });
});

afterAll(async () => {
  await results.close();
  await resultsQueue.close();
  await redis.quit();
  await deleteKeysWithPrefix(url, prefix);
  await expectNoLeakedHandles(baseline);
});

/** Pushes a raw job onto call-results (jobId = call id, as the reporter does) and waits until it is processed. */
async function push(data: Record<string, unknown>, timeoutMs = 10_000): Promise<Job> {
  const job = await resultsQueue.add('forged', data, { jobId: typeof data.callId === 'string' ? data.callId.replaceAll(':', '_') : undefined });
  await waitFor(async () => {
    const state = await job.getState();
    return state === 'completed' || state === 'failed' ? state : undefined;
  }, timeoutMs, `job ${job.id} to be processed`);
  return job;
}

const refusals = (callId: string) => logLines.filter((l) => l.callId === callId && l.msg === 'impossible result refused');

/** A call that is ringing: its record says dialing, attempt 1, and the attempt's dial is marked sent. */
async function ringing(campaignId: string, callId: string, options: { dialSent: boolean } = { dialSent: true }): Promise<void> {
  await store.createCalls(campaignId, [{ callId, phoneNumber: '+14155550170', metadata: {} }]);
  await store.beginAttempt({ callId, campaignId, phoneNumber: '+14155550170', metadata: {} }, 1, `call-${callId}-1`, options);
}

const result = (campaignId: string, callId: string, extra: Partial<CallResult> = {}): CallResult => ({
  callId,
  campaignId,
  outcome: 'answered',
  reportedBy: 'agent',
  attempt: 1,
  endedAt: Date.now(),
  ...extra,
});

describe('impossible results', () => {
  it('refuses results for calls with no record: no phantom calls, the campaign count and pick-up rate stay', async () => {
    const campaignId = 'phantoms';
    // 4 dialed calls, 1 answered: pick-up rate 25 %
    for (const [callId, outcome] of [['p-1', 'answered'], ['p-2', 'busy'], ['p-3', 'no_answer'], ['p-4', 'declined']] as const) {
      await ringing(campaignId, callId);
      const job = await push(result(campaignId, callId, { outcome, reportedBy: outcome === 'answered' ? 'agent' : 'consumer' }));
      expect(await job.getState()).toBe('completed');
    }
    expect((await buildCampaignReport(store, campaignId)).pickUp?.percent).toBe(25);

    // five forged results for calls that never existed (the campaign 4 → 9 calls, 25 % → 55.6 %)
    const forged = [
      result(campaignId, 'ghost-1'),
      result(campaignId, 'ghost-2'),
      result(campaignId, 'ghost-3', { outcome: 'transferred', transfer: { mode: 'cold', target: 'tel:+12025550100' } }),
      result(campaignId, 'ghost-4', { reportedBy: 'consumer' }),
      result(campaignId, 'ghost-5', { outcome: 'busy', reportedBy: 'consumer' }),
    ];
    for (const data of forged) expect(await (await push(data)).getState()).toBe('failed');

    const report = await buildCampaignReport(store, campaignId);
    expect(report.total).toBe(4);
    expect(report.calls.map((c) => c.callId)).toEqual(['p-1', 'p-2', 'p-3', 'p-4']);
    expect(report.pickUp?.percent).toBe(25);
    for (const { callId } of forged) {
      expect(await store.get(campaignId, callId)).toBeUndefined();
      expect(refusals(callId)).toHaveLength(1);
      expect(refusals(callId)[0]?.reason).toBe(`no record of call ${callId} in campaign ${campaignId}`);
    }
  });

  it('refuses an agent outcome for a call that is still queued 10 minutes out', async () => {
    const campaignId = 'queued';
    await store.createCalls(campaignId, [{ callId: 'later-1', phoneNumber: '+14155550171', metadata: {} }]);
    const job = await push(result(campaignId, 'later-1', { attempt: undefined, endedAt: Date.now() + 10 * MINUTE }));
    expect(await job.getState()).toBe('failed');
    expect(job.failedReason ?? (await resultsQueue.getJob('later-1'))?.failedReason).toMatch(/agent may not end a call that is queued/);
    expect(await store.get(campaignId, 'later-1')).toMatchObject({ state: 'queued', attempts: 0 });
    expect(await store.counters(campaignId)).toEqual({ total: 1, terminal: 0, byOutcome: {} });
    expect(refusals('later-1')).toHaveLength(1);
    expect(refusals('later-1')[0]).toMatchObject({ level: 40, state: 'queued', reportedBy: 'agent', reason: 'agent may not end a call that is queued' });
  });

  it('lets each reporter end a call only from the states it can end it from', async () => {
    const campaignId = 'rules';
    const at = (callId: string) => store.get(campaignId, callId);
    // the consumer ends a call still queued (a gate: do-not-call, expiry) …
    await store.createCalls(campaignId, [{ callId: 'gate-1', phoneNumber: '+14155550172', metadata: {} }]);
    expect(await (await push(result(campaignId, 'gate-1', { outcome: 'skipped', reportedBy: 'consumer', attempt: 0 }))).getState()).toBe('completed');
    expect(await at('gate-1')).toMatchObject({ state: 'terminal', outcome: 'skipped' });
    // … but not a connected call: that is the agent's (or the watchdog's)
    await ringing(campaignId, 'conn-1');
    await store.endAttempt(campaignId, 'conn-1', 1, 'in_call', { result: 'answered' });
    expect(await (await push(result(campaignId, 'conn-1', { outcome: 'no_answer', reportedBy: 'consumer' }))).getState()).toBe('failed');
    expect(await at('conn-1')).toMatchObject({ state: 'in_call' });
    await resultsQueue.remove('conn-1');
    expect(await (await push(result(campaignId, 'conn-1', { outcome: 'failed', reportedBy: 'watchdog' }))).getState()).toBe('completed');
    expect(await at('conn-1')).toMatchObject({ state: 'terminal', outcome: 'failed' });
    // the watchdog never ends a call that is not connected
    await ringing(campaignId, 'ring-1');
    expect(await (await push(result(campaignId, 'ring-1', { outcome: 'failed', reportedBy: 'watchdog' }))).getState()).toBe('failed');
    expect(await at('ring-1')).toMatchObject({ state: 'dialing' });
    // an operator cancels only calls not yet ringing
    await resultsQueue.remove('ring-1');
    expect(await (await push(result(campaignId, 'ring-1', { outcome: 'canceled', reportedBy: 'operator' }))).getState()).toBe('failed');
    expect(await at('ring-1')).toMatchObject({ state: 'dialing' });
    // … but does cancel one whose consumer has begun the attempt and not yet sent its dial (waiting for a CPS slot)
    await ringing(campaignId, 'slot-1', { dialSent: false });
    expect(await (await push(result(campaignId, 'slot-1', { outcome: 'canceled', reportedBy: 'operator' }))).getState()).toBe('completed');
    expect(await at('slot-1')).toMatchObject({ state: 'terminal', outcome: 'canceled' });
    // the agent of a ringing call ends it
    await resultsQueue.remove('ring-1');
    expect(await (await push(result(campaignId, 'ring-1', { outcome: 'voicemail' }))).getState()).toBe('completed');
    expect(await at('ring-1')).toMatchObject({ state: 'terminal', outcome: 'voicemail' });
  });

  it("accepts the agent's outcome for a call put back to wait after its latest attempt, not for an older attempt", async () => {
    // The consumer saw a dial error and put the call back, while the callee had in fact answered in attempt 2's room:
    // the agent's outcome ends the call (else the callee is rung again); one from attempt 1's room does not.
    const campaignId = 'put-back';
    await ringing(campaignId, 'back-1');
    await store.endAttempt(campaignId, 'back-1', 1, 'waiting_retry', { result: 'no_answer' });
    await store.beginAttempt({ callId: 'back-1', campaignId, phoneNumber: '+14155550170', metadata: {} }, 2, 'call-back-1-2');
    await store.endAttempt(campaignId, 'back-1', 2, 'waiting_retry', { result: 'platform_error' });
    expect(await (await push(result(campaignId, 'back-1', { attempt: 1 }))).getState()).toBe('failed');
    expect(refusals('back-1')[0]?.reason).toBe('agent may end a call that is waiting_retry only for its latest attempt, not attempt 1');
    expect(await store.get(campaignId, 'back-1')).toMatchObject({ state: 'waiting_retry' });
    await resultsQueue.remove('back-1');
    expect(await (await push(result(campaignId, 'back-1', { attempt: 2 }))).getState()).toBe('completed');
    expect(await store.get(campaignId, 'back-1')).toMatchObject({ state: 'terminal', outcome: 'answered', attempts: 2 });
  });

  it('refuses call and campaign ids that are not ids (a ":" would reach into other Redis keys)', async () => {
    const before = await redis.keys(`${prefix}:dialer:*`);
    for (const data of [
      result('colons', 'x:y'),
      result('a:b', 'in-caller'),
      result('colons', ''),
      result('colons', 'y'.repeat(129)),
    ]) {
      expect(await (await push(data)).getState()).toBe('failed');
    }
    expect((await redis.keys(`${prefix}:dialer:*`)).sort()).toEqual(before.sort());
  });

  // 20 MB through BullMQ and zod takes seconds on a quiet machine, far more on a loaded one
  it('keeps the outcome of a result with a 20 MB transcript, the transcript cut with a visible marker', { timeout: BIG_RESULT_TIMEOUT_MS }, async () => {
    const campaignId = 'huge';
    await ringing(campaignId, 'big-1');
    const line = 'x'.repeat(3000);
    const transcript = Array.from({ length: 7200 }, (_, i) => ({ role: i % 2 ? ('callee' as const) : ('agent' as const), text: line }));
    expect(JSON.stringify(transcript).length).toBeGreaterThan(20 * MB);
    const job = await push(result(campaignId, 'big-1', { transcript, summary: 's'.repeat(MB), reason: 'r'.repeat(MB) }), BIG_RESULT_TIMEOUT_MS);
    expect(await job.getState()).toBe('completed');

    const record = await store.get(campaignId, 'big-1');
    expect(record).toMatchObject({ state: 'terminal', outcome: 'answered' });
    const stored = await redis.hstrlen(store.keys.callRecord(campaignId, 'big-1'), 'details');
    expect(stored).toBeLessThan(MAX_TRANSCRIPT_BYTES + 64 * 1024);
    const lines = record?.details?.transcript ?? [];
    const marker = lines.at(-1);
    expect(marker?.role).toBe('system');
    expect(marker?.text).toMatch(/^\[transcript truncated: \d+ lines \/ \d+ bytes dropped\]$/);
    const [, dropped] = /: (\d+) lines/.exec(marker?.text ?? '') ?? [];
    expect(lines.length - 1 + Number(dropped)).toBe(transcript.length);
    expect(lines.slice(0, -1).every((l) => l.text === line)).toBe(true);
    expect(record?.reason?.length).toBeLessThanOrEqual(1000);
    expect(record?.reason).toMatch(/… \[cut from 1048576 chars\]$/);
    expect(record?.details?.summary?.length).toBeLessThanOrEqual(4000);
  });
});
