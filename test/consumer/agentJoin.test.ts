/**
 * The "agent joined?" check after an answer, at its edges (breaker report findings 1-3):
 * - an agent that joins as the consumer gives up on it, and reports, cannot end the call `answered` over the
 *   consumer's `failed`: the consumer ends the attempt on the record before it hangs up, and the record refuses the
 *   agent's outcome for that attempt (one outcome, never two, never contradictory);
 * - an answered attempt taken over from a consumer that died while it waited for the agent is checked too;
 * - an agent whose job LiveKit assigned but whose process is still connecting is waited for up to
 *   AGENT_JOIN_ASSIGNED_MAX_MS; only a dispatch without a job is hung up at AGENT_JOIN_GRACE_MS.
 */
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { NO_AGENT_REASON } from '../../src/consumer/agentPresence.js';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import { loadConfig } from '../../src/core/config.js';
import { createLiveKitClients } from '../../src/core/livekitClients.js';
import { createDialerMetrics, type DialerMetrics } from '../../src/core/metrics.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { waitForEvent } from '../../src/sim/index.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { startCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';

const campaignId = 'agent-join';
const GRACE_MS = 600;
const EVENT_TIMEOUT_MS = 20_000;
const answering = { default: { type: 'answer' as const, afterMs: 20, callee: { kind: 'human' as const } } };

let p: TestPipeline | undefined;
let dialer: DialWorkerHandle | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  await dialer?.close(true);
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await p?.close();
  dialer = undefined;
  p = undefined;
});

/** `call-<callId>-<attempt>` → its parts. */
function roomParts(room: string): { callId: string; attempt: number } {
  const match = /^call-(.+)-(\d+)$/.exec(room);
  if (!match?.[1] || !match[2]) throw new Error(`not an attempt room: ${room}`);
  return { callId: match[1], attempt: Number(match[2]) };
}

/**
 * A dial worker whose LiveKit client, once it has deleted a room, lets the room's agent report `answered` for that
 * attempt and waits until the results worker has handled that report, before the consumer goes on: the agent that
 * joined right after the consumer's last look, was hung up on, and reported before the consumer did (the breaker's
 * timeline: room_deleted .4258, the agent's "call ended" .4266, the consumer's report after).
 */
async function dialerWithLateAgent(pipeline: TestPipeline, metrics?: DialerMetrics): Promise<DialWorkerHandle> {
  const livekit = createLiveKitClients({ url: pipeline.sim.url, apiKey: pipeline.sim.apiKey, apiSecret: pipeline.sim.apiSecret });
  const agentReporter = new ResultReporter(pipeline.redis, pipeline.config.queuePrefix);
  const results = new Queue(CALL_RESULTS_QUEUE, { connection: pipeline.redis, prefix: pipeline.config.queuePrefix });
  cleanups.push(() => agentReporter.close(), () => results.close());
  const deleteRoom = livekit.rooms.deleteRoom.bind(livekit.rooms);
  livekit.rooms.deleteRoom = async (room: string) => {
    await deleteRoom(room);
    const { callId, attempt } = roomParts(room);
    await agentReporter.report({ callId, campaignId, outcome: 'answered', reason: 'agent ended the call', reportedBy: 'agent', attempt, durationMs: 0, endedAt: Date.now() });
    await waitFor(async () => {
      const job = await results.getJob(callId);
      const state = job ? await job.getState() : 'gone';
      return state === 'completed' || state === 'failed' || state === 'gone' || state === 'unknown' ? true : undefined;
    }, EVENT_TIMEOUT_MS, 'the agent report handled');
  };
  return startDialWorker({ config: pipeline.config, livekit, logger: silentLogger, metrics });
}

describe('an agent that joins as the consumer hangs up, and reports first', () => {
  it("on the last attempt: the call ends failed (the consumer's decision), the agent's answered is not applied", async () => {
    p = await startTestPipeline('late-agent-last', { agent: 'none', dialers: 0, network: answering, env: { AGENT_JOIN_GRACE_MS: String(GRACE_MS), DIAL_MAX_ATTEMPTS: '1' } });
    dialer = await dialerWithLateAgent(p);
    const callId = await p.enqueue({ phoneNumber: '+14155550401', campaignId });

    const record = await p.waitForOutcome(campaignId, callId, EVENT_TIMEOUT_MS);
    expect(record).toMatchObject({ outcome: 'failed', reason: NO_AGENT_REASON, attempts: 1 });
    expect(record.details?.reportedBy).toBe('consumer');
    expect(record.attemptLog.map((a) => [a.attempt, a.result, a.reason])).toEqual([[1, 'failed', NO_AGENT_REASON]]);
    const counters = await p.store.counters(campaignId);
    expect(counters.byOutcome).toEqual({ failed: 1 });
  });

  it('with a retry left: the agent outcome of the hung-up attempt is refused and does not hold the call; the call ends with its last attempt', async () => {
    p = await startTestPipeline('late-agent-retry', { agent: 'none', dialers: 0, network: answering, env: { AGENT_JOIN_GRACE_MS: String(GRACE_MS), DIAL_MAX_ATTEMPTS: '2' } });
    const metrics = createDialerMetrics();
    dialer = await dialerWithLateAgent(p, metrics);
    const callId = await p.enqueue({ phoneNumber: '+14155550402', campaignId });

    const record = await p.waitForOutcome(campaignId, callId, EVENT_TIMEOUT_MS);
    expect(record).toMatchObject({ outcome: 'failed', reason: NO_AGENT_REASON, attempts: 2 });
    expect(record.details?.reportedBy).toBe('consumer');
    expect(record.attemptLog.map((a) => [a.attempt, a.result, a.reason])).toEqual([
      [1, 'failed', NO_AGENT_REASON],
      [2, 'failed', NO_AGENT_REASON],
    ]);
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155550402')).toHaveLength(2);
    expect((await p.store.counters(campaignId)).byOutcome).toEqual({ failed: 1 });
    // dialer_calls_without_agent_total counts attempts (documented so): one call, two attempts hung up
    expect((await metrics.callsWithoutAgent.get()).values[0]?.value).toBe(2);
  });
});

describe('an answered attempt taken over from a consumer killed while it waited for the agent', () => {
  it('is checked for its agent too: with none, hung up and ended failed instead of left to the watchdog', async () => {
    p = await startTestPipeline('recovered-no-agent', { agent: 'none', dialers: 0, network: answering, env: { DIAL_MAX_ATTEMPTS: '1', DIAL_LOCK_DURATION_MS: '1000' } });
    const pipeline = p;
    // consumer A waits far longer for the agent than this test lasts, and is killed while it waits
    const a = startCli(['consumer'], { ...pipeline.env, AGENT_JOIN_GRACE_MS: '60000', LOG_LEVEL: 'silent' });
    cleanups.push(async () => {
      if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
      await a.done;
    });
    const callId = await pipeline.enqueue({ phoneNumber: '+14155550403', campaignId });
    const room = `call-${callId}-1`;
    await waitForEvent(pipeline.sim.events, 'call_answered', (e) => e.room === room, EVENT_TIMEOUT_MS);
    a.child.kill('SIGKILL');
    await a.done;
    expect((await pipeline.store.get(campaignId, callId))?.state).toBe('dialing');

    dialer = await startDialWorker({ config: loadConfig({ ...pipeline.env, AGENT_JOIN_GRACE_MS: String(GRACE_MS) }), logger: silentLogger });
    const record = await pipeline.waitForOutcome(campaignId, callId, EVENT_TIMEOUT_MS);
    expect(record).toMatchObject({ outcome: 'failed', reason: NO_AGENT_REASON, attempts: 1 });
    expect(record.attemptLog.map((e) => [e.attempt, e.result, e.reason])).toEqual([[1, 'failed', NO_AGENT_REASON]]);
    // the end is written to the record first, then the room is deleted (so a late agent cannot end it answered)
    await waitFor(() => (pipeline.sim.deletedRooms.includes(room) ? true : undefined), EVENT_TIMEOUT_MS, 'room deleted');
    expect(pipeline.sim.calls.filter((c) => c.room === room)).toHaveLength(1);
  });
});

describe('an agent whose job is assigned but whose process is still connecting', () => {
  it('is waited for past AGENT_JOIN_GRACE_MS, up to AGENT_JOIN_ASSIGNED_MAX_MS: the call connects, nobody is hung up on', async () => {
    p = await startTestPipeline('slow-agent', { network: answering, env: { AGENT_JOIN_GRACE_MS: String(GRACE_MS), AGENT_JOIN_ASSIGNED_MAX_MS: '8000', DIAL_MAX_ATTEMPTS: '2' } });
    const pipeline = p;
    const joinDelayMs = 2000;
    pipeline.sim.setAgentJoinDelay(joinDelayMs);
    const callId = await pipeline.enqueue({ phoneNumber: '+14155550404', campaignId });
    const room = `call-${callId}-1`;
    const answered = await waitForEvent(pipeline.sim.events, 'call_answered', (e) => e.room === room, EVENT_TIMEOUT_MS);
    const joined = await waitForEvent(pipeline.sim.events, 'participant_joined', (e) => e.room === room && e.kind === 'AGENT', EVENT_TIMEOUT_MS);
    expect(joined.at - answered.at).toBeGreaterThan(GRACE_MS);

    const record = await waitFor(async () => {
      const r = await pipeline.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    }, EVENT_TIMEOUT_MS, 'in_call');
    expect(record.attemptLog.map((e) => e.result)).toEqual(['answered']);
    expect(pipeline.sim.deletedRooms).not.toContain(room);
    expect(pipeline.sim.calls.filter((c) => c.phoneNumber === '+14155550404')).toHaveLength(1);
  });

  it('is hung up at AGENT_JOIN_ASSIGNED_MAX_MS when its agent still has not joined', async () => {
    const assignedMaxMs = 1500;
    p = await startTestPipeline('stuck-agent', { network: answering, env: { AGENT_JOIN_GRACE_MS: String(GRACE_MS), AGENT_JOIN_ASSIGNED_MAX_MS: String(assignedMaxMs), DIAL_MAX_ATTEMPTS: '1' } });
    const pipeline = p;
    pipeline.sim.setAgentJoinDelay(60_000);
    const callId = await pipeline.enqueue({ phoneNumber: '+14155550405', campaignId });
    const room = `call-${callId}-1`;
    const answered = await waitForEvent(pipeline.sim.events, 'call_answered', (e) => e.room === room, EVENT_TIMEOUT_MS);
    const deleted = await waitForEvent(pipeline.sim.events, 'room_deleted', (e) => e.room === room, EVENT_TIMEOUT_MS);
    expect(deleted.at - answered.at).toBeGreaterThanOrEqual(assignedMaxMs);
    const record = await pipeline.waitForOutcome(campaignId, callId, EVENT_TIMEOUT_MS);
    expect(record).toMatchObject({ outcome: 'failed', reason: NO_AGENT_REASON });
  });
});
