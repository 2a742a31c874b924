/**
 * The simulated agent end to end: the simulator's dispatches and answered calls drive the agent's call logic in
 * agents-js text mode; its LiveKit API calls go to the simulator and its outcomes to `call-results` in Redis.
 */
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { LiveKitClients } from '../../src/core/livekitClients.js';
import { INBOUND_GREETING_TEXT } from '../../src/harness/calleeScript.js';
import { inboundCallId } from '../../src/agent/callPlan.js';
import { CallOutcomeTracker } from '../../src/agent/outcomeTracker.js';
import { startSimulatedAgent, type SimulatedAgent } from '../../src/harness/simulatedAgent.js';
import { parseProfiles } from '../../src/agent/profiles.js';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig } from '../../src/core/config.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { startResultsWorker } from '../../src/results/resultsWorker.js';
import { waitFor } from '../helpers/waitFor.js';
import { systemClock } from '../../src/core/time.js';
import { RoomAgentDispatch, RoomConfiguration } from '@livekit/protocol';
import { startLiveKitSim, waitForEvent, type InboundCallOptions, type LiveKitSim } from '../../src/sim/index.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { ResultsReader, dialLikeConsumer, nextNumber, simClients } from './helpers.js';

const AGENT_NAME = 'sim-agent-test';
const prefix = uniquePrefix('agent-sim');
let sim: LiveKitSim;
let clients: LiveKitClients;
let agent: SimulatedAgent;
let results: ResultsReader;
/** Everything the simulated agent logged (debug and up): an inbound caller's number must never appear in full. */
const logLines: string[] = [];

const profiles = parseProfiles({
  default: {
    instructions: 'You are calling {{first_name}}.',
    voicemailMessage: 'Hi {{first_name}}, please call us back.',
    transfer: { destinations: { desk: { target: 'tel:+12025550100' } } },
  },
  amd: {
    instructions: 'You are calling {{first_name}}.',
    voicemailMessage: 'Hi {{first_name}}, please call us back.',
    amd: true,
  },
  survey: {
    instructions: 'Survey.',
    survey: { questions: ['How satisfied are you?', 'Would you recommend us?'] },
  },
  warm: {
    instructions: 'Warm.',
    transfer: { mode: 'warm', destinations: { operator: { target: 'tel:+12025550110' } } },
  },
  'warm-stalled': {
    instructions: 'Warm, to an operator line that rings and rings.',
    transfer: {
      mode: 'warm',
      notConnectedMessage: 'Nobody could take your call in time, sorry.',
      destinations: { operator: { target: 'tel:+12025550119' } },
    },
  },
  'support-line': {
    instructions: 'You answer the support line.',
    greeting: 'Welcome the caller to the support line.',
    transfer: { destinations: { desk: { target: 'tel:+12025550100' } } },
  },
});

beforeAll(async () => {
  sim = await startLiveKitSim();
  clients = simClients(sim);
  results = new ResultsReader(testRedisUrl(), prefix);
  agent = await startSimulatedAgent({
    sim,
    redisUrl: testRedisUrl(),
    queuePrefix: prefix,
    agentName: AGENT_NAME,
    profiles,
    logger: pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) }),
    timing: { limits: { maxCallDurationMs: 10_000, silenceTimeoutMs: 300 }, behaviour: { transferConfirmTimeoutMs: 1000, transferRingingTimeoutS: 5, voicemailPauseMs: 10 } },
  });
});

afterAll(async () => {
  await agent.close();
  await results.close();
  await sim.close();
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

describe('consumer-dialed calls', () => {
  it('a person who says hello is answered, the agent says goodbye and hangs up (deletes the room)', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'human', lines: ['Hello?'] } });
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-human', phoneNumber: number, agentName: AGENT_NAME, metadata: { first_name: 'Ada' } });
    expect(call.answered).toBe(true);
    const result = await results.waitFor('sim-human');
    expect(result).toMatchObject({ outcome: 'answered', reason: 'agent ended the call', reportedBy: 'agent', campaignId: 'agent-tests', attempt: 1 });
    expect(result.transcript?.some((line) => line.role === 'callee' && line.text === 'Hello?')).toBe(true);
    await agent.idle();
    expect(sim.deletedRooms).toContain(call.room);
  });

  it('a voicemail greeting gets the message and a hang-up: outcome voicemail', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'voicemail' } });
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-vm', phoneNumber: number, agentName: AGENT_NAME, metadata: { first_name: 'Ada' } });
    const result = await results.waitFor('sim-vm');
    expect(result.outcome).toBe('voicemail');
    expect(result.transcript?.some((line) => line.role === 'agent' && line.text === 'Hi Ada, please call us back.')).toBe(true);
    await agent.idle();
    expect(sim.deletedRooms).toContain(call.room);
  });

  it('a profile with AMD: the detector hears the answering machine, the message is left (runCall runs AMD here too)', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'voicemail' } });
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-amd', phoneNumber: number, agentName: AGENT_NAME, agentProfile: 'amd', metadata: { first_name: 'Ada' } });
    const result = await results.waitFor('sim-amd');
    expect(result).toMatchObject({ outcome: 'voicemail', reason: 'answering machine (detected by AMD); message left' });
    expect(result.transcript?.some((line) => line.role === 'agent' && line.text === 'Hi Ada, please call us back.')).toBe(true);
    await agent.idle();
    expect(sim.deletedRooms).toContain(call.room);
  });

  it('"I want a real person" is transferred cold and confirmed: outcome transferred', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'wants_human' } });
    sim.network.setTransfer('tel:+12025550100', { result: 'accept', respondAfterMs: 20, afterMs: 50 });
    await dialLikeConsumer(sim, clients, { callId: 'sim-xfer', phoneNumber: number, agentName: AGENT_NAME });
    const result = await results.waitFor('sim-xfer');
    expect(result).toMatchObject({ outcome: 'transferred', transfer: { mode: 'cold', target: 'tel:+12025550100' } });
    expect(sim.transfers.some((t) => t.identity === 'sip-sim-xfer' && t.transferTo === 'tel:+12025550100')).toBe(true);
  });

  it('a survey callee answers each question: the outcome carries the answers', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, {
      type: 'answer',
      afterMs: 20,
      callee: { kind: 'human', lines: ['Hello?'], surveyAnswers: { '1': 'Very satisfied', '2': 'Yes, definitely' } },
    });
    await dialLikeConsumer(sim, clients, { callId: 'sim-survey', phoneNumber: number, agentName: AGENT_NAME, agentProfile: 'survey' });
    const result = await results.waitFor('sim-survey');
    expect(result.outcome).toBe('answered');
    expect(result.surveyAnswers).toEqual([
      { question: 'How satisfied are you?', answer: 'Very satisfied' },
      { question: 'Would you recommend us?', answer: 'Yes, definitely' },
    ]);
  });

  it('a warm hand-off dials the operator into a consultation room and moves them in: outcome transferred (warm)', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'wants_human' } });
    sim.network.setBehavior('+12025550110', { type: 'answer', afterMs: 20, callee: { kind: 'human' } });
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-warm', phoneNumber: number, agentName: AGENT_NAME, agentProfile: 'warm' });
    const result = await results.waitFor('sim-warm');
    expect(result).toMatchObject({ outcome: 'transferred', transfer: { mode: 'warm', target: 'tel:+12025550110' } });
    // the phone legs: caller and operator together (the agent's own participant stays while its job watches the caller)
    const identities = sim.participants(call.room).filter((p) => p.kind !== 'AGENT').map((p) => p.identity).sort();
    expect(identities).toEqual(['human-agent-sip', 'sip-sim-warm']);
  });

  it('an operator who declines the warm hand-off: back to the caller, who is told so; the failure is in the summary', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'wants_human' } });
    sim.network.setBehavior('+12025550110', { type: 'decline', afterMs: 30 });
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-warm-no', phoneNumber: number, agentName: AGENT_NAME, agentProfile: 'warm' });
    const result = await results.waitFor('sim-warm-no');
    expect(result.outcome).toBe('answered');
    expect(result.summary).toContain('warm transfer to operator failed: the operator did not take the call (SIP 603 Decline)');
    expect(result.transcript?.some((line) => line.role === 'agent' && line.text.startsWith("I'm sorry, I couldn't connect you"))).toBe(true);
    expect(sim.deletedRooms).toContain(`${call.room}-human-agent`);
    sim.network.setBehavior('+12025550110', { type: 'answer', afterMs: 20, callee: { kind: 'human' } });
  });

  it('a call that is never answered is left to the consumer: the agent reports nothing', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'busy' });
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-busy', phoneNumber: number, agentName: AGENT_NAME });
    expect(call.answered).toBe(false);
    await agent.idle();
    expect(await results.get('sim-busy')).toBeUndefined();
  });

  describe('a callee who leaves before answering: the record notes how, for a consumer taking over the attempt', () => {
    let connection: Redis;
    let store: CallStore;
    const CAMPAIGN = 'agent-tests';
    beforeAll(() => {
      connection = new Redis(testRedisUrl());
      store = new CallStore(connection, prefix, systemClock);
    });
    afterAll(async () => {
      await connection.quit();
    });
    let cleanupRingOut: () => void = () => undefined;
    afterEach(() => {
      cleanupRingOut();
      cleanupRingOut = () => undefined;
    });

    it('a decline (603) while the consumer dials attempt 1: attemptObserved says USER_REJECTED for attempt 1, and no result', async () => {
      const number = nextNumber();
      sim.network.setBehavior(number, { type: 'decline', afterMs: 200 });
      await store.beginAttempt({ callId: 'sim-decline', campaignId: CAMPAIGN, phoneNumber: number, metadata: {} }, 1, 'call-sim-decline-1');
      const call = await dialLikeConsumer(sim, clients, { callId: 'sim-decline', phoneNumber: number, agentName: AGENT_NAME });
      expect(call.answered).toBe(false);
      await agent.idle();
      const record = await store.get(CAMPAIGN, 'sim-decline');
      expect(record?.attemptObserved).toMatchObject({ attempt: 1, disconnectReason: 'USER_REJECTED', lastCallStatus: 'ringing' });
      expect(record?.state).toBe('dialing');
      expect(await results.get('sim-decline')).toBeUndefined();
    });

    it('a ring-out (current livekit/sip: the request times out): USER_UNAVAILABLE', async () => {
      const number = nextNumber();
      sim.network.setBehavior(number, { type: 'ring_out' });
      const ringOutBefore = sim.network.ringOut;
      sim.network.setRingOut('timeout');
      cleanupRingOut = () => sim.network.setRingOut(ringOutBefore);
      await store.beginAttempt({ callId: 'sim-ringout', campaignId: CAMPAIGN, phoneNumber: number, metadata: {} }, 1, 'call-sim-ringout-1');
      await clients.dispatch.createDispatch('call-sim-ringout-1', AGENT_NAME, {
        metadata: JSON.stringify({ phone_number: number, call_id: 'sim-ringout', campaign_id: CAMPAIGN, attempt: 1, dialed_by: 'consumer', sip_participant_identity: 'sip-sim-ringout' }),
      });
      await expect(
        clients.sip.createSipParticipant(sim.outboundTrunkId, number, 'call-sim-ringout-1', { participantIdentity: 'sip-sim-ringout', waitUntilAnswered: true, ringingTimeout: 1 }),
      ).rejects.toThrow();
      await agent.idle();
      expect((await store.get(CAMPAIGN, 'sim-ringout'))?.attemptObserved).toMatchObject({ attempt: 1, disconnectReason: 'USER_UNAVAILABLE', lastCallStatus: 'ringing' });
      await clients.rooms.deleteRoom('call-sim-ringout-1');
    });

    it('an observation of an attempt the record has moved past, or of a call that has ended, is not stored', async () => {
      const number = nextNumber();
      sim.network.setBehavior(number, { type: 'decline', afterMs: 200 });
      const identity = { callId: 'sim-stale', campaignId: CAMPAIGN, phoneNumber: number, metadata: {} };
      await store.beginAttempt(identity, 1, 'call-sim-stale-1');
      await store.beginAttempt(identity, 2, 'call-sim-stale-2');
      // The dispatch (and so the agent) is attempt 1's.
      await dialLikeConsumer(sim, clients, { callId: 'sim-stale', phoneNumber: number, agentName: AGENT_NAME });
      await agent.idle();
      expect((await store.get(CAMPAIGN, 'sim-stale'))?.attemptObserved).toBeUndefined();

      await store.applyTerminal({ callId: 'sim-stale', campaignId: CAMPAIGN, outcome: 'declined', endedAt: Date.now(), reportedBy: 'consumer', attempt: 2 });
      expect(await store.observeAttemptEnd(CAMPAIGN, 'sim-stale', 2, { disconnectReason: 'USER_REJECTED' })).toBe(false);
      expect(await store.observeAttemptEnd(CAMPAIGN, 'no-such-call', 1, { disconnectReason: 'USER_REJECTED' })).toBe(false);
      expect((await store.get(CAMPAIGN, 'sim-stale'))?.attemptObserved).toBeUndefined();
    });
  });
});

describe('many calls at once', () => {
  /** More calls at once than Node's default listener limit (10) per event. */
  const CALLS_AT_ONCE = 12;
  /** Listeners on the simulator's event bus, summed over its events. */
  const listenersOnSim = (): number => sim.events.eventNames().reduce((sum, name) => sum + sim.events.listenerCount(name), 0);

  it('serves twelve calls at once without a listener-leak warning, and leaves no listener on the simulator once they are over', async () => {
    const before = listenersOnSim();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    onTestFinished(() => {
      process.off('warning', onWarning);
    });
    const ids = Array.from({ length: CALLS_AT_ONCE }, (_, i) => `sim-many-${i}`);
    await Promise.all(
      ids.map(async (callId) => {
        const number = nextNumber();
        sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'human', lines: ['Hello?'] } });
        await dialLikeConsumer(sim, clients, { callId, phoneNumber: number, agentName: AGENT_NAME, metadata: { first_name: 'Ada' } });
      }),
    );
    for (const callId of ids) expect((await results.waitFor(callId)).outcome).toBe('answered');
    await agent.idle();
    expect(listenersOnSim()).toBe(before);
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  });
});

describe('self-dialed calls (dispatch with only phone_number)', () => {
  async function dispatchOnly(room: string, phoneNumber: string): Promise<void> {
    await clients.dispatch.createDispatch(room, AGENT_NAME, { metadata: JSON.stringify({ phone_number: phoneNumber }) });
  }

  it('486 Busy Here is reported as busy with the SIP status', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'busy' });
    await dispatchOnly('adhoc-busy', number);
    const result = await results.waitFor('adhoc-busy');
    expect(result).toMatchObject({ outcome: 'busy', sipStatusCode: 486, sipStatus: 'Busy Here', campaignId: 'default' });
    expect(sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });

  it('records a self-dialed call before dialing, so a busy line ends its record as busy (the results worker refuses outcomes of calls it has no record of)', async () => {
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix, LOG_LEVEL: 'silent' });
    const worker = await startResultsWorker({ config, logger: pino({ level: 'silent' }) });
    const connection = new Redis(testRedisUrl());
    try {
      const number = nextNumber();
      sim.network.setBehavior(number, { type: 'busy' });
      await dispatchOnly('adhoc-busy-record', number);
      const store = new CallStore(connection, prefix, systemClock);
      const record = await waitFor(async () => {
        const r = await store.get('default', 'adhoc-busy-record');
        return r?.state === 'terminal' ? r : undefined;
      }, 15_000, 'the self-dialed call ended on its record');
      expect(record).toMatchObject({ outcome: 'busy', sipStatusCode: 486, phoneNumber: number });
    } finally {
      await worker.close();
      await connection.quit();
    }
  });

  it('404 Not Found is reported as invalid_number', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'not_found' });
    await dispatchOnly('adhoc-404', number);
    const result = await results.waitFor('adhoc-404');
    expect(result).toMatchObject({ outcome: 'invalid_number', sipStatusCode: 404 });
  });

  it('an answered self-dialed call runs the conversation', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'voicemail' } });
    await dispatchOnly('adhoc-vm', number);
    const result = await results.waitFor('adhoc-vm');
    expect(result.outcome).toBe('voicemail');
    const dialed = sim.calls.find((c) => c.phoneNumber === number);
    expect(dialed?.room).toBe('adhoc-vm');
  });
});

describe('a warm transfer that stalls (AGENT_WARM_TRANSFER_TIMEOUT_S)', () => {
  const DEADLINE_AGENT = 'sim-agent-warm-deadline';
  const DEADLINE_MS = 500;
  const OPERATOR_RINGING_S = 20;
  const OPERATOR = '+12025550119';
  let deadlineAgent: SimulatedAgent;

  beforeAll(async () => {
    deadlineAgent = await startSimulatedAgent({
      sim,
      redisUrl: testRedisUrl(),
      queuePrefix: prefix,
      agentName: DEADLINE_AGENT,
      profiles,
      logger: pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) }),
      timing: {
        limits: { maxCallDurationMs: 30_000, silenceTimeoutMs: 20_000 },
        behaviour: { transferConfirmTimeoutMs: 1000, transferRingingTimeoutS: OPERATOR_RINGING_S, voicemailPauseMs: 10, warmTransferTimeoutMs: DEADLINE_MS },
      },
    });
  });

  afterAll(async () => {
    await deadlineAgent.close();
  });

  it('an operator who never answers: at the deadline the operator leg is hung up, the caller hears the profile message, one answered outcome', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'wants_human' } });
    sim.network.setBehavior(OPERATOR, { type: 'ring_out' });
    const operatorDialed = waitForEvent(sim.events, 'call_dialing', (e) => e.phoneNumber === OPERATOR, 10_000);
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-warm-stalled', phoneNumber: number, agentName: DEADLINE_AGENT, agentProfile: 'warm-stalled' });
    const consultRoom = `${call.room}-human-agent`;
    const operatorGone = waitForEvent(sim.events, 'room_deleted', (e) => e.room === consultRoom, 10_000);
    const dialed = await operatorDialed;
    const gone = await operatorGone;
    // given up at the deadline, long before the operator's phone would have stopped ringing on its own
    expect(gone.at - dialed.at).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(gone.at - dialed.at).toBeLessThan(OPERATOR_RINGING_S * 1000 / 2);
    expect(sim.calls.find((c) => c.phoneNumber === OPERATOR)?.result).not.toBe('answered');

    const result = await results.waitFor('sim-warm-stalled');
    expect(result.outcome).toBe('answered');
    expect(result.summary).toContain('warm transfer to operator failed: the transfer did not go through within 0.5 s');
    const agentLines = (result.transcript ?? []).filter((line) => line.role === 'agent').map((line) => line.text);
    expect(agentLines).toContain('Nobody could take your call in time, sorry.');
    expect(logLines.some((line) => line.includes('warm transfer given up at its deadline'))).toBe(true);
    expect((await results.all()).filter((r) => r.callId === 'sim-warm-stalled')).toHaveLength(1);
  });
});

describe('the callee side and shutting down', () => {
  const SLOW_AGENT = 'sim-agent-slow';
  let slow: SimulatedAgent;

  beforeAll(async () => {
    slow = await startSimulatedAgent({
      sim,
      redisUrl: testRedisUrl(),
      queuePrefix: prefix,
      agentName: SLOW_AGENT,
      profiles,
      timing: { limits: { maxCallDurationMs: 30_000, silenceTimeoutMs: 20_000 } },
    });
  });

  afterAll(async () => {
    await slow.close();
  });

  it('an IVR gets the keys it asks for, and its next prompt is answered', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'ivr', dtmf: { '2': 'Support, this is Sam speaking.' } } });
    await dialLikeConsumer(sim, clients, { callId: 'sim-ivr', phoneNumber: number, agentName: AGENT_NAME });
    const result = await results.waitFor('sim-ivr');
    expect(result.outcome).toBe('answered');
    expect(result.transcript).toContainEqual({ role: 'system', text: 'DTMF sent: 2' });
    expect(result.transcript).toContainEqual({ role: 'callee', text: 'Support, this is Sam speaking.' });
  });

  it('the callee hanging up ends the session and writes the outcome (answered, callee hung up)', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, hangupAfterMs: 300, callee: { kind: 'ivr', lines: ['For sales, press 1.'] } });
    await dialLikeConsumer(sim, clients, { callId: 'sim-hangup', phoneNumber: number, agentName: SLOW_AGENT });
    const result = await results.waitFor('sim-hangup');
    expect(result).toMatchObject({ outcome: 'answered', reason: 'callee hung up' });
    expect(result.durationMs).toBeGreaterThanOrEqual(200);
  });

  it('a self-dialed callee who hangs up as the call is answered ends it at once (the agent asks the server whether the callee is still there)', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, hangupAfterMs: 0, callee: { kind: 'human', lines: ['Hello?', 'Who is this?'] } });
    await clients.dispatch.createDispatch('adhoc-gone', SLOW_AGENT, { metadata: JSON.stringify({ phone_number: number }) });
    const result = await results.waitFor('adhoc-gone');
    // Not the silence timeout (20 s for this agent), nor the script's goodbye: the callee was gone.
    expect(result).toMatchObject({ outcome: 'answered', reason: expect.stringMatching(/^callee hung up/) });
    expect(sim.deletedRooms).toContain('adhoc-gone');
  });

  it('close() ends calls in progress as failed (one outcome each), waits for them, and is idempotent', async () => {
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'ivr', lines: ['For sales, press 1.'] } });
    const call = await dialLikeConsumer(sim, clients, { callId: 'sim-shutdown', phoneNumber: number, agentName: SLOW_AGENT });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await Promise.all([slow.close(), slow.close()]);
    await slow.close();
    const result = await results.get('sim-shutdown');
    // runCall's own shutdown path: the harness ends the job's session for the job (CloseReason.JOB_SHUTDOWN).
    expect(result).toMatchObject({ outcome: 'failed', reason: 'the agent shut down during the call' });
    expect(sim.deletedRooms).toContain(call.room);
    await slow.idle();
  });
});

describe('inbound calls (the shipped dispatch rule: no phone number, one room call-_<caller>_<random> per call)', () => {
  /** The number callers dial, and the one whose rule's room config names a campaign. */
  const SUPPORT_LINE = '+15550109100';
  const HOTLINE = '+15550109101';

  beforeAll(async () => {
    // dispatch-rule.json as `dialer setup inbound` creates it, dispatching this test's agent, on its own trunk.
    const file = JSON.parse(await readFile(new URL('../../dispatch-rule.json', import.meta.url), 'utf8')) as {
      dispatch_rule: { rule: { dispatchRuleIndividual: { roomPrefix: string } }; roomConfig: { agents: { metadata: string }[] } };
    };
    const roomPrefix = file.dispatch_rule.rule.dispatchRuleIndividual.roomPrefix;
    const agentMetadata = file.dispatch_rule.roomConfig.agents[0]?.metadata ?? '';
    for (const [number, roomMetadata] of [
      [SUPPORT_LINE, ''],
      [HOTLINE, JSON.stringify({ campaign_id: 'support-hotline' })],
    ] as const) {
      const trunk = await clients.sip.createSipInboundTrunk(`line ${number}`, [number]);
      await clients.sip.createSipDispatchRule(
        { type: 'individual', roomPrefix },
        {
          trunkIds: [trunk.sipTrunkId],
          roomConfig: new RoomConfiguration({ metadata: roomMetadata, agents: [new RoomAgentDispatch({ agentName: AGENT_NAME, metadata: agentMetadata })] }),
        },
      );
    }
  });

  /** A caller dials the line: LiveKit's routing (trunk → rule → room, dispatch, caller joined) as the sim plays it. */
  function callIn(caller: string, to: string, options: Omit<InboundCallOptions, 'from' | 'to'> = {}): { room: string; callId: string; identity: string } {
    const call = sim.inboundCall({ from: caller, to, ...options });
    if (!call.ok) throw new Error(`inbound call refused: ${call.reason}`);
    return { room: call.room, callId: inboundCallId(call.room), identity: call.identity };
  }

  const resultsFor = async (callId: string) => (await results.all()).filter((r) => r.callId === callId);
  /** Callers of the calls the main agent (whose logs are kept) answered. */
  const callers: string[] = [];
  const nextCaller = () => {
    const caller = nextNumber('+1415555');
    callers.push(caller);
    return caller;
  };

  it('the agent greets, the caller is helped and says goodbye: one answered outcome under in-<hash of the room>, campaign inbound', async () => {
    const caller = nextCaller();
    const call = callIn(caller, SUPPORT_LINE, { caller: { kind: 'human', lines: ['Hi, I have a question about my order.', 'Great, thanks. Bye!'] } });
    expect(call.room).toMatch(new RegExp(`^call-_\\${caller}_[2-9A-Za-z]{12}$`));
    expect(call.callId).toMatch(/^in-[0-9a-f]{16}$/);
    const result = await results.waitFor(call.callId);
    expect(result).toMatchObject({ outcome: 'answered', reason: 'agent ended the call', campaignId: 'inbound', reportedBy: 'agent' });
    expect(result.attempt).toBeUndefined();
    expect(result.summary).toContain(`inbound call from ${caller}`);
    expect(result.phoneNumber).toBe(caller); // the record created from this result keeps the caller's number
    expect(result.transcript?.[0]).toEqual({ role: 'agent', text: INBOUND_GREETING_TEXT });
    expect(result.transcript).toContainEqual({ role: 'callee', text: 'Hi, I have a question about my order.' });
    await agent.idle();
    expect(sim.deletedRooms).toContain(call.room);
    expect(await resultsFor(call.callId)).toHaveLength(1);

    // A second report for the same inbound call (another job in that room) leaves the first one.
    const redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    const reporter = new ResultReporter(redis, prefix);
    try {
      const again = new CallOutcomeTracker({ callId: inboundCallId(call.room), campaignId: 'inbound', sink: reporter, logger: pino({ level: 'silent' }) });
      await again.finish({ outcome: 'failed', reason: 'a second job for the same room' });
    } finally {
      await reporter.close();
      await redis.quit();
    }
    const after = await resultsFor(call.callId);
    expect(after).toHaveLength(1);
    expect(after[0]?.outcome).toBe('answered');
  });

  it('a caller who asks for a person is transferred cold (confirmed): outcome transferred', async () => {
    sim.network.setTransfer('tel:+12025550100', { result: 'accept', respondAfterMs: 20, afterMs: 50 });
    const call = callIn(nextCaller(), SUPPORT_LINE, { caller: { kind: 'wants_human' } });
    const result = await results.waitFor(call.callId);
    expect(result).toMatchObject({ outcome: 'transferred', campaignId: 'inbound', transfer: { mode: 'cold', target: 'tel:+12025550100' } });
    expect(sim.transfers.some((t) => t.room === call.room && t.identity === call.identity)).toBe(true);
    await agent.idle();
    expect(await resultsFor(call.callId)).toHaveLength(1);
  });

  it("the room's metadata (the dispatch rule's roomConfig) can name the campaign", async () => {
    const call = callIn(nextCaller(), HOTLINE, { caller: { kind: 'human', lines: ['Hello?', 'Bye!'] } });
    const result = await results.waitFor(call.callId);
    expect(result).toMatchObject({ outcome: 'answered', campaignId: 'support-hotline' });
  });

  it("the caller's number is in no call id, Redis key or log line of the results worker that records the call", async () => {
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix, LOG_LEVEL: 'debug' });
    const workerLines: string[] = [];
    const worker = await startResultsWorker({ config, logger: pino({ level: 'debug' }, { write: (line: string) => workerLines.push(line) }) });
    const connection = new Redis(testRedisUrl());
    try {
      const caller = nextCaller();
      const call = callIn(caller, SUPPORT_LINE, { caller: { kind: 'human', lines: ['Hello?', 'Bye!'] } });
      const store = new CallStore(connection, prefix, systemClock);
      const record = await waitFor(async () => {
        const r = await store.get('inbound', call.callId);
        return r?.state === 'terminal' ? r : undefined;
      }, 10_000, 'the inbound call recorded');
      expect(record).toMatchObject({ callId: inboundCallId(call.room), outcome: 'answered' });
      const digits = caller.slice(1);
      expect(record.callId).not.toContain(digits.slice(-7));
      const keys = await connection.keys(`${prefix}:*`);
      expect(keys.filter((k) => k.includes(digits.slice(-7)))).toEqual([]);
      // the worker logs "call ended" after its script has ended the record, so the record can be read first
      await waitFor(() => (workerLines.join('').includes(call.callId) ? true : undefined), 5_000, "the worker's line for the call");
      expect(workerLines.join('')).not.toContain(digits.slice(-7));
    } finally {
      await worker.close();
      await connection.quit();
    }
  });

  it("logs show inbound rooms with the caller's number cut to its last digits, never in full", async () => {
    await agent.idle();
    const logged = logLines.join('');
    expect(callers.length).toBeGreaterThan(0);
    for (const caller of callers) {
      expect(logged).toContain(`*${caller.slice(-4)}_`);
      expect(logged).not.toContain(caller.slice(1));
    }
  });

  describe('a caller who never joins', () => {
    const IMPATIENT_AGENT = 'sim-agent-inbound-wait';
    let impatient: SimulatedAgent;

    beforeAll(async () => {
      impatient = await startSimulatedAgent({
        sim,
        redisUrl: testRedisUrl(),
        queuePrefix: prefix,
        agentName: IMPATIENT_AGENT,
        profiles,
        timing: { answerWaitMs: 200 },
      });
    });

    afterAll(async () => {
      await impatient.close();
    });

    it('is still one outcome: failed, and the room is deleted', async () => {
      // The dispatch a rule makes, with the caller gone before joining (a hang-up while the room was set up).
      const room = `call-_${nextNumber('+1415555')}_In4`;
      await clients.dispatch.createDispatch(room, IMPATIENT_AGENT, { metadata: '{"agent_profile":"support-line"}' });
      const call = { room, callId: inboundCallId(room) };
      const result = await results.waitFor(call.callId);
      expect(result).toMatchObject({ outcome: 'failed', reason: expect.stringMatching(/^no caller joined the room within \d+ s$/), campaignId: 'inbound', durationMs: 0 });
      await impatient.idle();
      expect(sim.deletedRooms).toContain(call.room);
      expect(await resultsFor(call.callId)).toHaveLength(1);
    });
  });
});
