/**
 * An answered call needs its agent in the room. LiveKit drops a dispatch no agent worker takes (none registered, or
 * every host at its load threshold: "no servers available") while CreateSIPParticipant still rings the number; the
 * consumer then hangs up within AGENT_JOIN_GRACE_MS and ends the attempt with one outcome, through the normal retry
 * policy, instead of leaving the callee in an empty room until the outcome watchdog.
 */
import { AgentDispatch, AgentDispatchState, Job, JobState, JobStatus, ParticipantInfo_Kind } from '@livekit/protocol';
import { Queue } from 'bullmq';
import { RoomServiceClient } from 'livekit-server-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { HANGUP_MAX_MS, HANGUP_RETRY_MS, NO_AGENT_HANGUP_FAILED_REASON, NO_AGENT_REASON, requireAgentAfterAnswer, waitForAgentInRoom } from '../../src/consumer/agentPresence.js';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import { createDialerMetrics } from '../../src/core/metrics.js';
import { OUTCOME_WATCHDOG_QUEUE } from '../../src/core/outcomeWatchdogQueue.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { startStandInAgent, type SimAgentWorker } from '../../src/harness/simAgentWorker.js';
import { waitForEvent } from '../../src/sim/index.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { TestClock } from '../helpers/testClock.js';
import { waitFor } from '../helpers/waitFor.js';

const campaignId = 'agent-presence';
const GRACE_MS = 600;
/** Time the consumer may take beyond the grace to delete the room (Redis and LiveKit round trips on a busy host). */
const HANGUP_SLACK_MS = 1500;
const EVENT_TIMEOUT_MS = 15_000;
const answering = { default: { type: 'answer' as const, afterMs: 20, callee: { kind: 'human' as const } } };

let p: TestPipeline | undefined;
let dialer: DialWorkerHandle | undefined;
let host: SimAgentWorker | undefined;

afterEach(async () => {
  await dialer?.close(true);
  await host?.close();
  await p?.close();
  dialer = undefined;
  host = undefined;
  p = undefined;
});

/** Jobs of `queue` for `callId` (jobId = call id): 0 or 1. */
async function jobsFor(pipeline: TestPipeline, queue: string, callId: string): Promise<number> {
  const q = new Queue(queue, { connection: pipeline.redis, prefix: pipeline.config.queuePrefix });
  try {
    return (await q.getJob(callId)) ? 1 : 0;
  } finally {
    await q.close();
  }
}

describe('a dispatch no agent worker takes', () => {
  it('is hung up within the grace after the answer and ends with one outcome, failed "no agent joined the room", never left to the watchdog', async () => {
    p = await startTestPipeline('no-agent', {
      agent: 'none',
      dialers: 0,
      network: answering,
      env: { AGENT_JOIN_GRACE_MS: String(GRACE_MS), DIAL_MAX_ATTEMPTS: '1' },
    });
    const pipeline = p;
    const metrics = createDialerMetrics();
    dialer = await startDialWorker({ config: pipeline.config, logger: silentLogger, metrics });
    const callId = await pipeline.enqueue({ phoneNumber: '+14155550301', campaignId });
    const room = `call-${callId}-1`;
    const notTaken = waitForEvent(pipeline.sim.events, 'job_not_assigned', (e) => e.room === room, EVENT_TIMEOUT_MS);
    const answered = waitForEvent(pipeline.sim.events, 'call_answered', (e) => e.room === room, EVENT_TIMEOUT_MS);
    const deleted = waitForEvent(pipeline.sim.events, 'room_deleted', (e) => e.room === room, EVENT_TIMEOUT_MS);

    expect(await notTaken).toMatchObject({ reason: 'no worker registered under this agent name' });
    const hungUpAfterMs = (await deleted).at - (await answered).at;
    expect(hungUpAfterMs).toBeGreaterThanOrEqual(GRACE_MS);
    expect(hungUpAfterMs).toBeLessThan(GRACE_MS + HANGUP_SLACK_MS);

    const record = await pipeline.waitForOutcome(campaignId, callId);
    expect(record).toMatchObject({ outcome: 'failed', reason: NO_AGENT_REASON, attempts: 1 });
    expect(record.details?.reportedBy).toBe('consumer');
    expect(record.attemptLog).toEqual([expect.objectContaining({ attempt: 1, result: 'failed', kind: 'retry', reason: NO_AGENT_REASON })]);
    // one report, and no watchdog check armed (the answered path arms it; this call never counted as connected)
    expect(await jobsFor(pipeline, CALL_RESULTS_QUEUE, callId)).toBe(1);
    expect(await jobsFor(pipeline, OUTCOME_WATCHDOG_QUEUE, callId)).toBe(0);
    expect(pipeline.sim.calls.filter((c) => c.room === room)).toHaveLength(1);
    expect((await metrics.callsWithoutAgent.get()).values[0]?.value).toBe(1);
    expect((await metrics.dialAttempts.get()).values.find((v) => v.labels.result === 'answered')?.value).toBe(1);
    // the outcome the consumer wrote itself is counted where it was written: the results worker finds it already there
    expect((await metrics.callOutcomes.get()).values.find((v) => v.labels.outcome === 'failed')?.value).toBe(1);
  });

  it('a host at its load threshold takes nothing: the attempt is hung up and retried per the retry policy; the next one, with the host below it, connects', async () => {
    p = await startTestPipeline('full-host', {
      agent: 'none',
      network: answering,
      env: { AGENT_JOIN_GRACE_MS: String(GRACE_MS), DIAL_MAX_ATTEMPTS: '2', DIAL_RETRY_DELAY_S: '1' },
    });
    const pipeline = p;
    host = await startStandInAgent({ url: pipeline.sim.url, apiKey: pipeline.sim.apiKey, apiSecret: pipeline.sim.apiSecret, agentName: pipeline.config.agentName, full: true });
    await waitFor(() => (pipeline.sim.agentWorkers().some((w) => !w.available) ? true : undefined), EVENT_TIMEOUT_MS, 'the host reports full');
    const fullHost = host;
    const callId = await pipeline.enqueue({ phoneNumber: '+14155550302', campaignId });
    const notTaken = await waitForEvent(pipeline.sim.events, 'job_not_assigned', (e) => e.room === `call-${callId}-1`, EVENT_TIMEOUT_MS);
    expect(notTaken.reason).toContain('no servers available');
    await waitForEvent(pipeline.sim.events, 'room_deleted', (e) => e.room === `call-${callId}-1`, EVENT_TIMEOUT_MS);
    fullHost.setFull(false);

    const record = await waitFor(async () => {
      const r = await pipeline.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    }, EVENT_TIMEOUT_MS, 'the second attempt connected');
    expect(record.attempts).toBe(2);
    expect(record.attemptLog.map((a) => [a.attempt, a.result, a.reason])).toEqual([
      [1, 'failed', NO_AGENT_REASON],
      [2, 'answered', undefined],
    ]);
    expect(pipeline.sim.calls.filter((c) => c.phoneNumber === '+14155550302')).toHaveLength(2);
  });
});

describe('a call whose agent is in the room', () => {
  it('stays connected: the consumer looks at once (no wait for the grace), and LiveKit lists the agent as kind AGENT, identity agent-<job id>', async () => {
    const longGraceMs = 30_000;
    p = await startTestPipeline('agent-present', { network: answering, env: { AGENT_JOIN_GRACE_MS: String(longGraceMs) } });
    const pipeline = p;
    const callId = await pipeline.enqueue({ phoneNumber: '+14155550303', campaignId });
    const room = `call-${callId}-1`;
    const answered = await waitForEvent(pipeline.sim.events, 'call_answered', (e) => e.room === room, EVENT_TIMEOUT_MS);
    const record = await waitFor(async () => {
      const r = await pipeline.store.get(campaignId, callId);
      return r?.state === 'in_call' ? r : undefined;
    }, EVENT_TIMEOUT_MS, 'in_call');
    expect(Date.now() - answered.at).toBeLessThan(longGraceMs / 2);
    expect(record.attemptLog.map((a) => a.result)).toEqual(['answered']);
    expect(pipeline.sim.deletedRooms).not.toContain(room);

    const rooms = new RoomServiceClient(pipeline.sim.url, pipeline.sim.apiKey, pipeline.sim.apiSecret);
    const agent = (await rooms.listParticipants(room)).find((participant) => participant.kind === ParticipantInfo_Kind.AGENT);
    const [job] = pipeline.sim.agentJobs.filter((j) => j.room === room);
    expect(agent?.identity).toBe(`agent-${job?.id ?? ''}`);
    expect(agent?.attributes['lk.agent.name']).toBe(pipeline.config.agentName);
    expect(await jobsFor(pipeline, OUTCOME_WATCHDOG_QUEUE, callId)).toBe(1);
  });
});

describe('waitForAgentInRoom', () => {
  const room = 'call-x-1';
  const agentOnly = [{ kind: ParticipantInfo_Kind.AGENT, identity: 'agent-AJ_1' }];

  it('polls until the grace is over, then answers absent; an agent that joins meanwhile is found', async () => {
    const clock = new TestClock();
    let listed: { kind: ParticipantInfo_Kind; identity: string }[] = [];
    let looks = 0;
    const rooms = {
      listParticipants: async () => {
        looks++;
        return listed as never;
      },
    };
    const absent = waitForAgentInRoom(rooms, room, { graceMs: 1000, clock, pollMs: 250 });
    await clock.advance(1000);
    expect(await absent).toEqual({ kind: 'absent', waitedMs: 1000 });
    expect(looks).toBe(5); // at once, then every 250 ms up to the grace

    const joining = waitForAgentInRoom(rooms, room, { graceMs: 1000, clock, pollMs: 250 });
    await clock.advance(250);
    listed = agentOnly;
    await clock.advance(250);
    expect(await joining).toEqual({ kind: 'present', identity: 'agent-AJ_1', waitedMs: 500 });
  });

  it('answers unknown, not absent, when LiveKit never answered', async () => {
    const clock = new TestClock();
    const rooms = {
      listParticipants: async () => {
        throw new Error('connect ECONNREFUSED');
      },
    };
    const unknown = waitForAgentInRoom(rooms, room, { graceMs: 500, clock, pollMs: 250 });
    await clock.advance(500);
    expect(await unknown).toEqual({ kind: 'unknown', reason: 'connect ECONNREFUSED', waitedMs: 500 });
  });

  /** A dispatch of `room` whose one job has `status` (AgentDispatchState.jobs, as ListDispatch answers). */
  const dispatchWith = (status: JobStatus | undefined) =>
    new AgentDispatch({
      id: 'AD_1',
      room,
      agentName: 'dialer-agent',
      state: new AgentDispatchState({ jobs: status === undefined ? [] : [new Job({ id: 'AJ_1', state: new JobState({ status, participantIdentity: 'agent-AJ_1' }) })] }),
    });

  it('past the grace, waits on while the dispatch has a job assigned (pending or running), up to the longer bound', async () => {
    const clock = new TestClock();
    let jobStatus: JobStatus | undefined = JobStatus.JS_RUNNING;
    let dispatchLooks = 0;
    const rooms = { listParticipants: async () => [] as never };
    const dispatches = {
      listDispatch: async () => {
        dispatchLooks++;
        return [dispatchWith(jobStatus)];
      },
    };
    const assigned: string[] = [];
    const slow = waitForAgentInRoom(rooms, room, { graceMs: 1000, assignedMaxMs: 3000, dispatches, clock, pollMs: 250, onJobAssigned: (job) => assigned.push(job) });
    await clock.advance(3000);
    expect(await slow).toEqual({ kind: 'absent', waitedMs: 3000, assignedJob: 'AJ_1' });
    expect(assigned).toEqual(['AJ_1']); // told once
    expect(dispatchLooks).toBe(8); // at each look from the grace (1000 ms) until the bound (3000 ms, not asked then)

    for (const status of [undefined, JobStatus.JS_SUCCESS, JobStatus.JS_FAILED]) {
      jobStatus = status;
      const none = waitForAgentInRoom(rooms, room, { graceMs: 1000, assignedMaxMs: 3000, dispatches, clock, pollMs: 250 });
      await clock.advance(1000);
      expect(await none).toEqual({ kind: 'absent', waitedMs: 1000 });
    }
    jobStatus = JobStatus.JS_PENDING;
    const pending = waitForAgentInRoom(rooms, room, { graceMs: 1000, assignedMaxMs: 3000, dispatches, clock, pollMs: 250 });
    await clock.advance(3000);
    expect(await pending).toMatchObject({ kind: 'absent', waitedMs: 3000, assignedJob: 'AJ_1' });
  });

  it('answers callee_gone when the callee it is told about is not in the room', async () => {
    const clock = new TestClock();
    const rooms = { listParticipants: async () => [{ kind: ParticipantInfo_Kind.STANDARD, identity: 'someone' }] as never };
    expect(await waitForAgentInRoom(rooms, room, { graceMs: 1000, clock, calleeIdentity: 'sip-x' })).toEqual({ kind: 'callee_gone', waitedMs: 0 });
  });
});

describe('requireAgentAfterAnswer on a recovered answer', () => {
  it('leaves a call already marked connected alone without asking LiveKit (its agent was checked by the consumer that marked it)', async () => {
    const clock = new TestClock();
    let looks = 0;
    const result = await requireAgentAfterAnswer(
      { status: 'answered', room: 'call-r-1', participantIdentity: 'sip-r', recovered: true },
      { callId: 'r', campaignId: 'c', attempt: 1, final: true, lock: { key: 'k', token: 't' } },
      {
        rooms: {
          listParticipants: async () => {
            looks++;
            return [];
          },
          deleteRoom: async () => undefined as never,
        },
        store: {
          get: async () => ({ state: 'in_call', attempts: 1 }) as never,
          endAttemptWithoutAgent: async () => ({ status: 'ended' }),
          applyTransition: async () => ({ status: 'applied' }),
        },
        report: async () => undefined,
        graceMs: 0,
        clock,
      },
      silentLogger,
    );
    expect(result).toMatchObject({ status: 'answered', recovered: true });
    expect(looks).toBe(0);
  });
});

describe('requireAgentAfterAnswer hanging up on a callee with no agent', () => {
  const answered = { status: 'answered' as const, room: 'call-h-1', participantIdentity: 'sip-h', recovered: false };
  const attempt = { callId: 'h', campaignId: 'c', attempt: 1, final: false, lock: { key: 'k', token: 't' } };
  const depsWith = (clock: TestClock, deleteRoom: () => Promise<void>) => ({
    rooms: { listParticipants: async () => [], deleteRoom: deleteRoom as () => Promise<never> },
    store: {
      get: async () => undefined as never,
      endAttemptWithoutAgent: async () => ({ status: 'ended' as const }),
      applyTransition: async () => ({ status: 'applied' }) as never,
    },
    report: async () => undefined,
    graceMs: 0,
    clock,
  });

  it('tries the hang-up again while LiveKit fails, then retries the call as usual', async () => {
    const clock = new TestClock();
    let deletes = 0;
    const checking = requireAgentAfterAnswer(answered, attempt, depsWith(clock, async () => {
      deletes += 1;
      if (deletes <= 3) throw new Error('connect ECONNREFUSED');
    }), silentLogger);
    await clock.advance(3 * HANGUP_RETRY_MS);
    expect(await checking).toMatchObject({ status: 'failed', end: { kind: 'retry', reason: NO_AGENT_REASON } });
    expect(deletes).toBe(4);
  });

  it('ends the call, never retries it, when the hang-up never goes through (the callee may still be on the line)', async () => {
    const clock = new TestClock();
    let deletes = 0;
    const checking = requireAgentAfterAnswer(answered, attempt, depsWith(clock, async () => {
      deletes += 1;
      throw new Error('connect ECONNREFUSED');
    }), silentLogger);
    await clock.advance(HANGUP_MAX_MS + HANGUP_RETRY_MS);
    expect(await checking).toMatchObject({ status: 'failed', end: { kind: 'final', reason: NO_AGENT_HANGUP_FAILED_REASON } });
    expect(deletes).toBeGreaterThan(HANGUP_MAX_MS / HANGUP_RETRY_MS);
  });
});
