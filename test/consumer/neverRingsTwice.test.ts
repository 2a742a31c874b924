import type { ChildProcess } from 'node:child_process';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulatedAgent, type SimulatedAgent } from '../../src/harness/simulatedAgent.js';
import { createLiveKitClients } from '../../src/core/livekitClients.js';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { dialAttempt, type DialDeps } from '../../src/consumer/dialAttempt.js';
import { CLAIM_TO_SEND_MAX_MS, DialRateLimiter } from '../../src/consumer/dialRateLimiter.js';
import { startDialWorker } from '../../src/consumer/dialWorker.js';
import { PlatformBackoff } from '../../src/consumer/platformBackoff.js';
import { UNAVAILABLE_UNKNOWN_REASON } from '../../src/consumer/attemptEnd.js';
import { dialDepsFor, silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';
import { startConsumerProcess } from '../helpers/consumerProcess.js';

const campaignId = 'twice';
let pipeline: TestPipeline | undefined;
let agent: SimulatedAgent | undefined;
let child: ChildProcess | undefined;

afterEach(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
  await agent?.close();
  agent = undefined;
  await pipeline?.close();
  pipeline = undefined;
});

let nextNumber = 0;
const freshNumber = () => `+1415557${String(1000 + nextNumber++).padStart(4, '0')}`;

/** A consumer in its own process, so it can be killed with SIGKILL while a phone rings. */
async function startChildConsumer(env: Record<string, string>): Promise<ChildProcess> {
  return (await startConsumerProcess(env, 30_000)).child;
}

async function kill(proc: ChildProcess): Promise<void> {
  proc.kill('SIGKILL');
  if (proc.exitCode === null && proc.signalCode === null) await new Promise((resolve) => proc.once('exit', resolve));
}

/** The simulated agent serves the dispatches (start the pipeline with `agent: 'none'`, so no stand-in takes them first). */
async function startAgent(p: TestPipeline): Promise<SimulatedAgent> {
  return startSimulatedAgent({
    sim: p.sim,
    redisUrl: p.config.redisUrl,
    redis: p.config.redis, // the run's topology (TEST_REDIS_TOPOLOGY): its outcomes go where the pipeline's do
    queuePrefix: p.config.queuePrefix,
    agentName: p.config.agentName,
  });
}

describe('a consumer dies while the phone rings (SIGKILL), and another takes the call over', () => {
  it('does not ring a callee again who declined while no consumer was alive: the call ends declined after one ring', async () => {
    pipeline = await startTestPipeline('declined-dead', { dialers: 0, agent: 'none', env: { DIAL_LOCK_DURATION_MS: '1000', DIAL_RINGING_TIMEOUT_S: '10' } });
    const p = pipeline;
    agent = await startAgent(p);
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'decline', afterMs: 1500 });
    child = await startChildConsumer(p.env);
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number && c.status === 'ringing') ? true : undefined), 15_000, 'phone ringing');
    await kill(child);
    // the callee declines while no consumer is alive
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number && c.result === 'failed') ? true : undefined), 10_000, 'decline');

    await p.startDialer();
    const record = await p.waitForOutcome(campaignId, callId, 20_000);
    expect(record).toMatchObject({ outcome: 'declined', attempts: 1 });
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });

  it('does not dial again a number that answered "not found" before ringing while no consumer was alive: the call ends failed after one dial', async () => {
    pipeline = await startTestPipeline('notfound-dead', {
      agent: 'none',
      dialers: 0,
      env: { DIAL_LOCK_DURATION_MS: '1000', DIAL_RETRY_DELAY_S: '1', DIAL_MAX_ATTEMPTS: '3' },
    });
    const p = pipeline;
    agent = await startAgent(p);
    const number = freshNumber();
    // a 404 the carrier sends before any ringing; its answer goes to the consumer that dialed, which is gone by then
    p.sim.network.setBehavior(number, { type: 'not_found', afterMs: 1500 });
    child = await startChildConsumer(p.env);
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number) ? true : undefined), 15_000, 'dial sent');
    await kill(child);
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number && c.result === 'failed') ? true : undefined), 10_000, '404');

    await p.startDialer();
    const record = await p.waitForOutcome(campaignId, callId, 20_000);
    // LiveKit keeps no SIP status: the agent saw USER_UNAVAILABLE before ringing, which a 404 and a 480 share
    expect(record).toMatchObject({ outcome: 'failed', attempts: 1, reason: UNAVAILABLE_UNKNOWN_REASON });
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });

  it('counts a ring-out that happened while no consumer was alive as a spent attempt, and rings again only as the next attempt after the retry delay', async () => {
    const retryDelayS = 1;
    pipeline = await startTestPipeline('ringout-dead', {
      agent: 'none',
      dialers: 0,
      env: { DIAL_LOCK_DURATION_MS: '1000', DIAL_RINGING_TIMEOUT_S: '2', DIAL_RETRY_DELAY_S: String(retryDelayS), DIAL_MAX_ATTEMPTS: '2' },
    });
    const p = pipeline;
    agent = await startAgent(p);
    const number = freshNumber();
    // current livekit/sip: a ring-out is a timeout (408 canceled), the participant leaves USER_UNAVAILABLE
    p.sim.network.setBehavior(number, { type: 'ring_out', ringOut: 'timeout' });
    child = await startChildConsumer(p.env);
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number && c.status === 'ringing') ? true : undefined), 15_000, 'phone ringing');
    await kill(child);
    const first = await waitFor(() => p.sim.calls.find((c) => c.phoneNumber === number && c.endedAt !== undefined), 10_000, 'ring-out');

    await p.startDialer();
    const record = await p.waitForOutcome(campaignId, callId, 20_000);
    expect(record).toMatchObject({ outcome: 'no_answer', attempts: 2 });
    const rooms = p.sim.calls.filter((c) => c.phoneNumber === number).map((c) => c.room);
    expect(rooms).toEqual([`call-${callId}-1`, `call-${callId}-2`]);
    const second = p.sim.calls.find((c) => c.room === `call-${callId}-2`);
    expect((second?.receivedAt ?? 0) - (first.endedAt ?? 0)).toBeGreaterThanOrEqual(retryDelayS * 1000);
  });
});

describe('a re-run of an attempt the record already knows', () => {
  it('applies a logged busy result instead of dialing the attempt again (the consumer died before BullMQ recorded the retry)', async () => {
    pipeline = await startTestPipeline('logged-busy', { dialers: 0, env: { DIAL_RETRY_DELAY_S: '1' } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 100 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    // what a consumer killed right after its attempt came back busy leaves: the result logged, the job not yet retried
    const identity = { callId, campaignId, phoneNumber: number, metadata: {} };
    await p.store.beginAttempt(identity, 1, `call-${callId}-1`);
    await p.store.endAttempt(campaignId, callId, 1, 'waiting_retry', { result: 'busy', kind: 'retry', sipStatusCode: 486, sipStatus: 'Busy Here' });
    const resumedAt = Date.now();
    await p.startDialer();
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    }, 20_000, 'answered on attempt 2');
    expect(record.attempts).toBe(2);
    const calls = p.sim.calls.filter((c) => c.phoneNumber === number);
    expect(calls.map((c) => c.room)).toEqual([`call-${callId}-2`]);
    expect((calls[0]?.receivedAt ?? 0) - resumedAt).toBeGreaterThanOrEqual(1000); // the busy retry delay
  });

  it('dials an attempt that began but never went out into a fresh room: the agent dispatched for it before is removed', async () => {
    pipeline = await startTestPipeline('began-not-sent', { dialers: 0 });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 200 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const room = `call-${callId}-1`;
    // what a consumer killed between its dispatch and its claim leaves: the attempt begun, an agent dispatched
    await p.store.beginAttempt({ callId, campaignId, phoneNumber: number, metadata: {} }, 1, room);
    const clients = createLiveKitClients({ url: p.sim.url, apiKey: p.sim.apiKey, apiSecret: p.sim.apiSecret });
    const stale = await clients.dispatch.createDispatch(room, p.config.agentName, { metadata: '{}' });
    await p.startDialer();
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 20_000, 'answered');
    expect(p.sim.dispatches.find((d) => d.id === stale.id)?.deletedAtMs).toBeDefined();
    expect(p.sim.dispatches.filter((d) => d.room === room && d.deletedAtMs === undefined)).toHaveLength(1);
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });

  it('ends a taken-over call it watched ring out as no_answer, even with no agent to say how it ended', async () => {
    pipeline = await startTestPipeline('followed-ringout', { dialers: 0, env: { DIAL_RINGING_TIMEOUT_S: '2', DIAL_MAX_ATTEMPTS: '1' } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'ring_out', ringOut: 'timeout' });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const room = `call-${callId}-1`;
    // a consumer claimed and dialed attempt 1, then died
    await p.store.beginAttempt({ callId, campaignId, phoneNumber: number, metadata: {} }, 1, room);
    await p.redis.hset(p.store.keys.callRecord(campaignId, callId), 'dialSentAttempt', '1', 'dialSentAt', String(Date.now()));
    const sip = createLiveKitClients({ url: p.sim.url, apiKey: p.sim.apiKey, apiSecret: p.sim.apiSecret }).sip;
    await sip.createSipParticipant(p.sim.outboundTrunkId, number, room, { participantIdentity: `sip-${callId}`, waitUntilAnswered: false, ringingTimeout: 2 });
    await p.startDialer();
    const record = await p.waitForOutcome(campaignId, callId, 20_000);
    expect(record).toMatchObject({ outcome: 'no_answer', attempts: 1 });
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });

  it('follows a call still ringing when Redis lost the attempt\'s "sent" mark (the last second of its AOF), instead of dialing it again', async () => {
    pipeline = await startTestPipeline('lost-mark', { dialers: 0, env: { DIAL_RINGING_TIMEOUT_S: '10' } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 1500 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const room = `call-${callId}-1`;
    await p.store.beginAttempt({ callId, campaignId, phoneNumber: number, metadata: {} }, 1, room);
    // the dial went out (and rings), its agent dispatched as a consumer's dial does, but Redis came back without the mark
    const { sip, dispatch } = createLiveKitClients({ url: p.sim.url, apiKey: p.sim.apiKey, apiSecret: p.sim.apiSecret });
    await dispatch.createDispatch(room, p.config.agentName, { metadata: '{}' });
    await sip.createSipParticipant(p.sim.outboundTrunkId, number, room, { participantIdentity: `sip-${callId}`, waitUntilAnswered: false });
    await p.startDialer();
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 20_000, 'followed to the answer');
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });
});

describe('a dial job that failed after its dial comes back as the next attempt (an error from Redis, say)', () => {
  /** What BullMQ holds after such a failure: the job counted one attempt made (`atm`) and is due again. */
  const countAttemptMade = async (p: TestPipeline, callId: string): Promise<void> => {
    const job = await p.calls.getJob(callId);
    if (!job) throw new Error(`no job for ${callId}`);
    await p.redis.hset(`${job.queueQualifiedName}:${callId}`, 'atm', 1); // the queue of the call's shard
  };

  it('applies the logged decline of the earlier attempt instead of dialing the next one: the call ends declined, rung once', async () => {
    pipeline = await startTestPipeline('failed-after-decline', { dialers: 0, env: { DIAL_RETRY_DELAY_S: '1' } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 100 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    // attempt 1 went out and was declined, its end logged; the outcome report then failed, and the job with it
    const identity = { callId, campaignId, phoneNumber: number, metadata: {} };
    await p.store.beginAttempt(identity, 1, `call-${callId}-1`, { dialSent: true });
    await p.store.endAttempt(campaignId, callId, 1, 'dialing', { result: 'declined', kind: 'final', sipStatusCode: 603, sipStatus: 'Decline' });
    await countAttemptMade(p, callId);
    await p.startDialer();
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'terminal' || r?.state === 'in_call' ? r : undefined;
    }, 20_000, 'the call to end');
    expect(record.outcome).toBe('declined');
    expect(record.attemptLog.map((a) => a.attempt)).toEqual([1]);
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(0);
  });

  it('follows the earlier attempt, still up, instead of ringing the callee again: the call is the answered one', async () => {
    pipeline = await startTestPipeline('failed-while-up', { dialers: 0, env: { DIAL_RINGING_TIMEOUT_S: '10', DIAL_RETRY_DELAY_S: '1' } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 1500 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const room = `call-${callId}-1`;
    await p.store.beginAttempt({ callId, campaignId, phoneNumber: number, metadata: {} }, 1, room, { dialSent: true });
    // attempt 1 went out (and rings) with its agent dispatched; its consumer's job then failed before the answer
    const { sip, dispatch } = createLiveKitClients({ url: p.sim.url, apiKey: p.sim.apiKey, apiSecret: p.sim.apiSecret });
    await dispatch.createDispatch(room, p.config.agentName, { metadata: '{}' });
    await sip.createSipParticipant(p.sim.outboundTrunkId, number, room, { participantIdentity: `sip-${callId}`, waitUntilAnswered: false });
    await countAttemptMade(p, callId);
    await p.startDialer();
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    }, 20_000, 'followed to the answer');
    expect(record.attemptLog.map((a) => [a.attempt, a.result])).toEqual([[1, 'answered']]);
    expect(p.sim.calls.filter((c) => c.phoneNumber === number).map((c) => c.room)).toEqual([room]);
  });
});

describe('jobs other services push', () => {
  it('a malformed job naming a call another job carries leaves that call alone while it rings', async () => {
    pipeline = await startTestPipeline('malformed-other', { env: { DIAL_RINGING_TIMEOUT_S: '10' } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 1500 });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === number && c.status === 'ringing') ? true : undefined), 15_000, 'ringing');
    const queue = new Queue(CALLS_QUEUE, { connection: p.redis, prefix: p.config.queuePrefix });
    try {
      await queue.add('call', { callId, campaignId, phoneNumber: 14155550199 }, { jobId: `bad-${callId}` });
      await waitFor(async () => ((await queue.getJob(`bad-${callId}`))?.failedReason ? true : undefined), 15_000, 'bad job failed');
    } finally {
      await queue.close();
    }
    const record = await waitFor(async () => {
      const r = await p.store.get(campaignId, callId);
      return r?.state === 'in_call' || r?.state === 'terminal' ? r : undefined;
    }, 15_000, 'answered');
    expect(record.state).toBe('in_call');
  });

  it('a job pushed with `attempts` but no backoff still waits the retry delay between attempts', async () => {
    const retryDelayS = 0.5;
    pipeline = await startTestPipeline('pushed-attempts', { env: { DIAL_RETRY_DELAY_S: String(retryDelayS) } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'busy' });
    const queue = new Queue(CALLS_QUEUE, { connection: p.redis, prefix: p.config.queuePrefix });
    try {
      await queue.add('call', { phone_number: number, campaign_id: campaignId, call_id: 'pushed-busy' }, { attempts: 3 });
      const record = await p.waitForOutcome(campaignId, 'pushed-busy', 30_000);
      expect(record).toMatchObject({ outcome: 'busy', attempts: 3 });
    } finally {
      await queue.close();
    }
    const rings = p.sim.calls.filter((c) => c.phoneNumber === number).map((c) => c.receivedAt);
    expect(rings).toHaveLength(3);
    for (let i = 1; i < rings.length; i++) expect((rings[i] ?? 0) - (rings[i - 1] ?? 0)).toBeGreaterThanOrEqual(retryDelayS * 1000);
  });
});

describe('only the holder of the dial job dials', () => {
  async function deps(p: TestPipeline): Promise<DialDeps> {
    return dialDepsFor(p);
  }
  const job = (number: string, callId: string) => ({ callId, campaignId, phoneNumber: number, metadata: {}, enqueuedAt: Date.now() });

  it('does not dial when its lock on the job lapsed and another consumer holds it', async () => {
    pipeline = await startTestPipeline('lapsed', { dialers: 0 });
    const p = pipeline;
    const number = freshNumber();
    const lock = { key: `${p.config.callShards.prefixOf(campaignId)}:${CALLS_QUEUE}:lapsed-1:lock`, token: 'mine' };
    await p.redis.set(lock.key, 'another-consumer', 'PX', 10_000);
    const result = await dialAttempt(job(number, 'lapsed-1'), 1, await deps(p), silentLogger, { lock });
    expect(result).toEqual({ status: 'lost_ownership' });
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(0);
    // the dispatch it made is removed again; the room is the holder's and stays
    expect(p.sim.dispatches.filter((d) => d.room === 'call-lapsed-1-1' && d.deletedAtMs === undefined)).toHaveLength(0);
    expect(p.sim.deletedRooms).not.toContain('call-lapsed-1-1');
  });

  it('does not dial when BullMQ reports the lock lost while the call waits for its CPS slot', async () => {
    pipeline = await startTestPipeline('lock-lost', { dialers: 0 });
    const p = pipeline;
    const number = freshNumber();
    const lock = { key: `${p.config.callShards.prefixOf(campaignId)}:${CALLS_QUEUE}:lost-1:lock`, token: 'mine' };
    await p.redis.set(lock.key, 'mine', 'PX', 10_000);
    const d = await deps(p);
    const slow = { ...d, limiter: new DialRateLimiter(p.redis, `${p.config.queuePrefix}:slow-cps`, 0.2) };
    await slow.limiter.reserve(); // the next slot is 5 s away
    const lockLost = new AbortController();
    const dialing = dialAttempt(job(number, 'lost-1'), 1, slow, silentLogger, { lock, lockLost: lockLost.signal });
    setTimeout(() => lockLost.abort(), 100);
    expect(await dialing).toEqual({ status: 'lost_ownership' });
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(0);
  });

  it('never dials one attempt twice, even from two holders that both believe they own it', async () => {
    pipeline = await startTestPipeline('two-holders', { dialers: 0 });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 300 });
    const lock = { key: `${p.config.callShards.prefixOf(campaignId)}:${CALLS_QUEUE}:both-1:lock`, token: 'shared' };
    await p.redis.set(lock.key, 'shared', 'PX', 10_000);
    const d = await deps(p);
    const results = await Promise.all([
      dialAttempt(job(number, 'both-1'), 1, d, silentLogger, { lock }),
      dialAttempt(job(number, 'both-1'), 1, d, silentLogger, { lock }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['answered', 'lost_ownership']);
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });
});

describe('platform back-off', () => {
  it('holds every slot of every consumer while a platform back-off runs: no call goes out until it ends', async () => {
    pipeline = await startTestPipeline('backoff-slots', { env: { DIAL_CPS: '20', DIAL_CONCURRENCY: '10' }, dialers: 2 });
    const p = pipeline;
    const list = Array.from({ length: 30 }, () => freshNumber());
    for (const n of list) p.sim.network.setBehavior(n, { type: 'answer', afterMs: 50 });
    await p.producer.enqueueCalls(list.map((phoneNumber) => ({ phoneNumber, campaignId })));
    await waitFor(() => (p.sim.calls.length >= 5 ? true : undefined), 15_000, 'first calls out');
    // LiveKit failed for some consumer (here: the test, as a third process would): the back-off starts
    const firstBackoffMs = 500; // at DIAL_CPS=20, ten dials would go out meanwhile if the back-off held nothing
    const backoff = new PlatformBackoff(p.redis, p.store.keys.platformBackoff(), p.store.keys.platformFailures(), firstBackoffMs);
    const asked = Date.now();
    const { backoffMs } = await backoff.failed();
    const startedAt = Date.now(); // the back-off runs from between `asked` and here until `asked + backoffMs` at least
    expect(backoffMs).toBe(firstBackoffMs);
    await waitFor(() => (p.sim.calls.filter((c) => c.result === 'answered').length === list.length ? true : undefined), 30_000, 'all answered');
    // No dial was claimed while the back-off ran (the claim is the last step before the request, and the point this
    // process controls: on a loaded machine a request claimed just before may still take a while to arrive). A claim's
    // dialSentAt is the consumer's clock when it sent the claim, which Redis runs up to CLAIM_TO_SEND_MAX_MS later (a
    // later reply is not dialed): one stamped that close to the back-off's end may have run after it (seen at +499 ms
    // of a 500 ms back-off).
    const records = await Promise.all(p.sim.calls.map((c) => p.store.get(campaignId, c.room.replace(/^call-(.+)-1$/, '$1'))));
    const claimedDuring = records.filter(
      (r) => r?.dialSentAt !== undefined && r.dialSentAt > startedAt && r.dialSentAt < asked + backoffMs - CLAIM_TO_SEND_MAX_MS,
    );
    expect(claimedDuring.map((r) => `${r?.callId} claimed at +${(r?.dialSentAt ?? 0) - startedAt} ms`)).toEqual([]);
    expect(records.every((r) => r?.dialSentAt !== undefined)).toBe(true);
    expect(p.sim.calls.some((c) => c.receivedAt >= asked + backoffMs)).toBe(true);
  });

  it('rings a callee once after a long queue-wide back-off: the call is dialed by one holder only, answered once', async () => {
    // back-offs of 0.3, 0.6 and 1.2 s: each longer than the pacing of DIAL_CPS=4 (250 ms), the last over twice the
    // lock's lifetime. The lock is 0.5 s, under DIAL_LOCK_DURATION_MS's floor of 1 s (which guards production against
    // lapses on event-loop stalls; here a lapse is the very thing the call must survive): the consumer is given the
    // config directly, every timing of the original scenario (1 s lock, 0.7/1.4/2.8 s back-offs, CPS 2) halved or so.
    const backoffMs = 300;
    const lockMs = 500;
    pipeline = await startTestPipeline('long-backoff', {
      dialers: 0,
      env: { DIAL_CPS: '4', DIAL_PLATFORM_BACKOFF_MS: String(backoffMs) },
    });
    const p = pipeline;
    p.dialers.push(await startDialWorker({ config: { ...p.config, dial: { ...p.config.dial, lockDurationMs: lockMs } }, logger: silentLogger }));
    const number = freshNumber();
    p.sim.network.setBehavior(number, { platformFailures: 3, behavior: { type: 'answer', afterMs: 200 } });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 30_000, 'answered');
    await new Promise((resolve) => setTimeout(resolve, 1.5 * lockMs)); // a second dial would come within the lock's lifetime
    const calls = p.sim.calls.filter((c) => c.phoneNumber === number);
    expect(calls.map((c) => c.result)).toEqual(['failed', 'failed', 'failed', 'answered']);
    // One dial reached the phone. It is attempt 1's room unless the machine stalled past the lock while a refused
    // request was in flight: the holder that takes the job over then cannot know whether that request rang, counts
    // attempt 1 as spent and dials attempt 2 (seen once under a loaded run) — still one ring, never two.
    const reached = calls.filter((c) => c.httpStatus === undefined || c.httpStatus < 500).map((c) => c.room);
    expect(reached).toHaveLength(1);
    expect([`call-${callId}-1`, `call-${callId}-2`]).toContain(reached[0]);
    // each try after a refusal waited out the doubling back-off (0.3 s, 0.6 s, 1.2 s), never a second request at once
    const gaps = calls.slice(1).map((c, i) => c.receivedAt - (calls[i]?.receivedAt ?? 0));
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(0.9 * backoffMs * 2 ** i));
    expect(gaps.at(-1)).toBeGreaterThan(2 * lockMs); // the premise: the last back-off outlived the job's lock twice over
  });

  it('ends a call as failed after DIAL_MAX_PLATFORM_ERRORS platform errors instead of retrying it for ever', async () => {
    pipeline = await startTestPipeline('platform-cap', { env: { DIAL_MAX_PLATFORM_ERRORS: '2', DIAL_PLATFORM_BACKOFF_MS: '100' } });
    const p = pipeline;
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'platform_unavailable' });
    const callId = await p.enqueue({ phoneNumber: number, campaignId });
    const record = await p.waitForOutcome(campaignId, callId, 20_000);
    expect(record.outcome).toBe('failed');
    expect(record.reason).toMatch(/gave up after 2 platform errors/);
    expect(record.attempts).toBe(1);
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(2);
  });
});

describe('every way a dial job ends writes one outcome', () => {
  it("ends a call as failed when BullMQ fails its job as 'stalled more than allowable limit'", async () => {
    pipeline = await startTestPipeline('stalled-limit', { dialers: 0 });
    const p = pipeline;
    const number = freshNumber();
    const callId = await p.enqueue({ phoneNumber: number, campaignId, notBefore: new Date(Date.now() + 60_000) });
    // What BullMQ's moveStalledJobsToWait does once a job stalled more than maxStalledCount times: it marks the job
    // with a deferred failure and moves it to wait, and the next worker to take it fails it with that reason.
    const job = await p.calls.getJob(callId);
    if (!job) throw new Error(`no job for ${callId}`);
    await p.redis.hset(`${job.queueQualifiedName}:${callId}`, 'defa', 'job stalled more than allowable limit'); // its shard's queue
    await job.promote();
    await p.startDialer();
    const record = await p.waitForOutcome(campaignId, callId);
    expect(record).toMatchObject({ outcome: 'failed', reason: 'job stalled more than allowable limit' });
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(0);
  });

  it.each([
    ['a number sent as an integer', { phoneNumber: 14155550123 }, /phoneNumber/],
    ['metadata sent as a string', { phoneNumber: '+14155550124', metadata: 'vip' }, /metadata/],
    ['5 MB of metadata', { phoneNumber: '+14155550125', metadata: { blob: 'x'.repeat(5 * 1024 * 1024) } }, /metadata must be at most 16 KiB/],
  ])('records and fails a pushed job with a valid call id but %s, without dialing it', async (_what, fields, reason) => {
    pipeline = await startTestPipeline('malformed', {});
    const p = pipeline;
    const queue = new Queue(CALLS_QUEUE, { connection: p.redis, prefix: p.config.queuePrefix });
    try {
      const callId = `pushed-${nextNumber++}`;
      await queue.add('call', { callId, campaignId, ...fields }, { jobId: callId });
      const record = await p.waitForOutcome(campaignId, callId);
      expect(record.outcome).toBe('failed');
      expect(record.reason).toMatch(reason);
      expect(p.sim.calls).toHaveLength(0);
      expect(p.sim.dispatches).toHaveLength(0);
    } finally {
      await queue.close();
    }
  });
});
