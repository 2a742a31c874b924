/**
 * Each tool's path in agents-js text mode: a FakeLLM scripts the tool calls, `session.run` + `result.expect` check
 * the conversation, the simulator records the LiveKit API calls the tool made, and Redis holds the outcome.
 */
import { initializeLogger, loggerOptions, voice } from '@livekit/agents';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildCallAgent, TOOL_NAMES } from '../../src/agent/callAgent.js';
import { CallServerApi } from '../../src/agent/callServerApi.js';
import { CallController, type CallBehaviour, type DtmfSender } from '../../src/agent/callController.js';
import { CallOutcomeTracker } from '../../src/agent/outcomeTracker.js';
import { parseProfiles, resolveCallProfile } from '../../src/agent/profiles.js';
import { WarmTransferTimeoutError, type WarmTransferPort, type WarmTransferRequest } from '../../src/agent/warmTransfer.js';
import type { Clock } from '../../src/core/time.js';
import { TestClock } from '../helpers/testClock.js';
import { waitFor } from '../helpers/waitFor.js';
import type { LiveKitClients } from '../../src/core/livekitClients.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { ResultsReader, nextNumber, simClients } from './helpers.js';

const prefix = uniquePrefix('agent-tools');
const logger = pino({ level: 'silent' });
const BEHAVIOUR: CallBehaviour = { transferConfirmTimeoutMs: 1000, transferRingingTimeoutS: 5, voicemailPauseMs: 10 };
const DESK = 'tel:+12025550100';
const BILLING = 'tel:+12025550101';
const SUPPORT = 'sip:support@pbx.example.com';

const catalog = parseProfiles({
  outbound: {
    instructions: 'You are calling {{first_name}} from {{company}}.',
    voicemailMessage: 'Hi {{first_name}}, this is {{company}}. Please call us back.',
    transfer: {
      announcement: 'Please hold while I transfer you.',
      destinations: {
        desk: { target: DESK, description: 'the front desk' },
        billing: { target: BILLING },
        support: { target: SUPPORT },
      },
    },
    dtmfMenu: [
      { digit: '1', label: 'billing', destination: 'billing' },
      { digit: '2', label: 'technical support', destination: 'support' },
    ],
    survey: { questions: ['How satisfied are you, from 1 to 5?', 'Would you recommend us?'] },
  },
  warm: {
    instructions: 'Hand callers to an operator.',
    transfer: { mode: 'warm', notConnectedMessage: 'Sorry, nobody is free to take your call.', destinations: { operator: { target: 'tel:+12025550112' } } },
  },
});

let sim: LiveKitSim;
let clients: LiveKitClients;
let redis: Redis;
let reporter: ResultReporter;
let results: ResultsReader;
const sessions: voice.AgentSession[] = [];

beforeAll(async () => {
  if (!loggerOptions()) initializeLogger({ pretty: false, level: 'fatal' });
  sim = await startLiveKitSim();
  clients = simClients(sim);
  redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
  reporter = new ResultReporter(redis, prefix);
  results = new ResultsReader(testRedisUrl(), prefix);
});

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close().catch(() => undefined)));
});

afterAll(async () => {
  await reporter.close();
  await results.close();
  await redis.quit();
  await sim.close();
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

interface TestCall {
  callId: string;
  room: string;
  identity: string;
  session: voice.AgentSession;
  controller: CallController;
  tracker: CallOutcomeTracker;
}

let callCounter = 0;

/** A real (simulated) answered SIP call in its own room, and an agent session on it driven by `responses`. */
async function connectCall(
  responses: voice.testing.FakeLLMResponse[],
  options: {
    sendDtmf?: DtmfSender;
    limits?: { maxCallDurationMs: number; silenceTimeoutMs: number };
    profile?: string;
    warmTransfer?: WarmTransferPort;
    behaviour?: CallBehaviour;
    clock?: Clock;
  } = {},
): Promise<TestCall> {
  callCounter += 1;
  const callId = `tools-${callCounter}`;
  const room = `call-${callId}-1`;
  const identity = `sip-${callId}`;
  const number = nextNumber('+1303555');
  sim.network.setBehavior(number, { type: 'answer', afterMs: 10, callee: { kind: 'human' } });
  await clients.sip.createSipParticipant(sim.outboundTrunkId, number, room, { participantIdentity: identity, waitUntilAnswered: true });

  const profile = resolveCallProfile({
    catalog,
    name: options.profile ?? 'outbound',
    defaultName: 'outbound',
    values: { first_name: 'Ada', company: 'Acme' },
    limits: options.limits ?? { maxCallDurationMs: 30_000, silenceTimeoutMs: 30_000 },
  });
  const tracker = new CallOutcomeTracker({ callId, campaignId: 'tools', attempt: 1, sink: reporter, logger });
  const serverApi = new CallServerApi({ clients, roomName: room, logger, pollIntervalMs: 50 });
  const controller = new CallController({
    profile,
    tracker,
    serverApi,
    behaviour: options.behaviour ?? BEHAVIOUR,
    outbound: true,
    calleeIdentity: identity,
    sendDtmf: options.sendDtmf,
    warmTransfer: options.warmTransfer,
    clock: options.clock,
    logger,
  });
  const session = new voice.AgentSession({
    llm: new voice.testing.FakeLLM(responses),
    vad: null,
    userAwayTimeout: null,
    turnHandling: { turnDetection: 'manual' },
  });
  sessions.push(session);
  await session.start({ agent: buildCallAgent(controller) });
  controller.attach(session);
  return { callId, room, identity, session, controller, tracker };
}

async function run(call: TestCall, userInput: string) {
  const result = call.session.run({ userInput });
  await result.wait();
  return result;
}

describe('detected_answering_machine', () => {
  it('leaves the profile message (placeholders filled), hangs up by deleting the room, outcome voicemail', async () => {
    const greeting = "Hi, you've reached Ada. Please leave a message after the beep.";
    const call = await connectCall([{ input: greeting, toolCalls: [{ name: TOOL_NAMES.voicemail, args: {} }] }]);
    const result = await run(call, greeting);
    result.expect.containsFunctionCall({ name: TOOL_NAMES.voicemail });
    result.expect.containsFunctionCallOutput({ isError: false });

    const outcome = await call.controller.done();
    expect(outcome).toMatchObject({ outcome: 'voicemail', callId: call.callId });
    expect(call.tracker.transcript).toContainEqual({ role: 'agent', text: 'Hi Ada, this is Acme. Please call us back.' });
    expect(sim.deletedRooms).toContain(call.room);
    expect((await results.waitFor(call.callId)).outcome).toBe('voicemail');
  });

  it('refuses before any greeting was heard (the model must listen first)', async () => {
    const call = await connectCall([]);
    await expect(call.controller.leaveVoicemail('tool')).rejects.toThrow(/greeting has been heard/);
    expect(call.controller.isEnding).toBe(false);
    await call.controller.abort('test over');
  });
});

describe('end_call (agents-js createEndCallTool)', () => {
  it('lets the goodbye play, then the session ends, the room is deleted and the outcome is answered', async () => {
    const call = await connectCall([{ input: 'Thanks, that is all. Bye!', content: 'Goodbye, Ada!', toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }] }]);
    const result = await run(call, 'Thanks, that is all. Bye!');
    // One turn carries the goodbye and the tool call; agents-js records the two in either order (the call first once
    // under two full test runs at once), then the call's output.
    result.expect.range(0, 2).containsMessage({ role: 'assistant' });
    result.expect.range(0, 2).containsFunctionCall({ name: TOOL_NAMES.endCall });
    result.expect.at(2).isFunctionCallOutput();

    const outcome = await call.controller.done();
    expect(outcome).toMatchObject({ outcome: 'answered', reason: 'agent ended the call' });
    expect(sim.deletedRooms).toContain(call.room);
    const written = await results.waitFor(call.callId);
    expect(written.transcript).toContainEqual({ role: 'agent', text: 'Goodbye, Ada!' });
    expect(written.durationMs).toBeGreaterThanOrEqual(0);
  });
});

describe('transfer_call (cold)', () => {
  it('announces, sends the SIP REFER for the SIP participant, confirms it left: outcome transferred (not a hang-up)', async () => {
    sim.network.setTransfer(DESK, { result: 'accept', respondAfterMs: 20, afterMs: 50 });
    const call = await connectCall([{ input: 'Can I talk to a person?', toolCalls: [{ name: TOOL_NAMES.transfer, args: { destination: 'desk' } }] }]);
    // As in a room: the callee's participant leaving is reported at once (here while the transfer is confirmed).
    const onLeft = (ev: { room: string; identity: string }) => {
      if (ev.room === call.room && ev.identity === call.identity) void call.controller.calleeLeft();
    };
    sim.events.on('participant_left', onLeft);
    const result = await run(call, 'Can I talk to a person?');
    sim.events.off('participant_left', onLeft);
    result.expect.nextEvent().isFunctionCall({ name: TOOL_NAMES.transfer, args: { destination: 'desk' } });
    result.expect.nextEvent().isFunctionCallOutput({ isError: false });

    const outcome = await call.controller.done();
    expect(outcome).toMatchObject({ outcome: 'transferred', transfer: { mode: 'cold', target: DESK } });
    expect(sim.transfers.find((t) => t.room === call.room)).toMatchObject({ identity: call.identity, transferTo: DESK, outcome: 'completed' });
    expect(call.tracker.transcript).toContainEqual({ role: 'agent', text: 'Please hold while I transfer you.' });
    expect((await results.waitFor(call.callId)).outcome).toBe('transferred');
  });

  it('a 603 from the destination comes back to the model as "could not transfer call"; the call goes on', async () => {
    sim.network.setTransfer(BILLING, { result: 'reject', sipStatus: 603, afterMs: 20 });
    const call = await connectCall([
      { input: 'Put me through to billing', toolCalls: [{ name: TOOL_NAMES.transfer, args: { destination: 'billing' } }] },
      { input: 'Fine, bye', content: 'Sorry about that. Goodbye!', toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }] },
    ]);
    const first = await run(call, 'Put me through to billing');
    first.expect.nextEvent().isFunctionCall({ name: TOOL_NAMES.transfer });
    const output = first.expect.nextEvent().isFunctionCallOutput({ isError: true }).event().item;
    expect(output.output).toMatch(/^could not transfer call \(SIP 603 Decline\)/);
    expect(call.controller.isEnding).toBe(false);
    expect(sim.transfers.find((t) => t.room === call.room)?.outcome).toBe('failed');

    await run(call, 'Fine, bye');
    const outcome = await call.controller.done();
    expect(outcome.outcome).toBe('answered');
    expect(outcome.summary).toContain('cold transfer to billing failed: SIP 603 Decline');
  });

  it('a REFER that returns early but never moves the callee is not confirmed, and is reported as a failure', async () => {
    sim.network.setTransfer(SUPPORT, { result: 'reject', asyncReject: true, afterMs: 20 });
    const call = await connectCall([{ input: 'Support please', toolCalls: [{ name: TOOL_NAMES.transfer, args: { destination: 'support' } }] }]);
    const result = await run(call, 'Support please');
    const output = result.expect.containsFunctionCallOutput({ isError: true }).event().item;
    expect(output.output).toMatch(/^could not transfer call \(not confirmed within 1 s/);
    expect(sim.participants(call.room).map((p) => p.identity)).toContain(call.identity);
    expect(call.controller.isEnding).toBe(false);
    await call.controller.abort('test over');
    expect((await results.waitFor(call.callId)).summary).toContain('cold transfer to support failed');
  });

  it('only configured destinations can be reached (the model cannot dial a number of its own)', async () => {
    const call = await connectCall([]);
    await expect(call.controller.transfer('premium-line')).rejects.toThrow(/unknown destination "premium-line"/);
    await call.controller.abort('test over');
  });
});

describe('DTMF', () => {
  it('a keypad press from the caller selects the menu entry and transfers to its department', async () => {
    sim.network.setTransfer(BILLING, { result: 'accept', respondAfterMs: 20, afterMs: 30 });
    const keypadTurn = '[keypad] The caller pressed 1: billing (destination "billing").';
    const call = await connectCall([{ input: keypadTurn, toolCalls: [{ name: TOOL_NAMES.transfer, args: { destination: 'billing' } }] }]);
    expect(call.controller.dtmfInput('7')).toBe('[keypad] The caller pressed 7, which is not a menu option.');

    // The room's DtmfReceived handler hands the digit to the model as this user turn.
    const result = await run(call, call.controller.dtmfInput('1'));
    result.expect.nextEvent().isFunctionCall({ name: TOOL_NAMES.transfer, args: { destination: 'billing' } });
    result.expect.nextEvent().isFunctionCallOutput({ isError: false });
    const outcome = await call.controller.done();
    expect(outcome).toMatchObject({ outcome: 'transferred', transfer: { mode: 'cold', target: BILLING } });
    expect(sim.transfers.find((t) => t.room === call.room)?.transferTo).toBe(BILLING);
  });

  it('send_dtmf_events presses the keys an IVR asks for', async () => {
    const sent: string[][] = [];
    const prompt = 'For sales press 1, for support press 2.';
    const call = await connectCall([{ input: prompt, toolCalls: [{ name: TOOL_NAMES.sendDtmf, args: { events: ['2'] } }] }], {
      sendDtmf: async (digits) => {
        sent.push(digits);
        return `sent ${digits.join('')}`;
      },
    });
    const result = await run(call, prompt);
    const call_ = result.expect.nextEvent().isFunctionCall({ name: TOOL_NAMES.sendDtmf }).event().item;
    expect(JSON.parse(call_.args)).toEqual({ events: ['2'] });
    result.expect.nextEvent().isFunctionCallOutput({ isError: false });
    expect(sent).toEqual([['2']]);
    await call.controller.abort('test over');
  });
});

describe('record_answer (surveys)', () => {
  it('stores each answer and the outcome carries them', async () => {
    const call = await connectCall([
      { input: 'Five!', toolCalls: [{ name: TOOL_NAMES.recordAnswer, args: { question: '1', answer: 'Five' } }] },
      { input: JSON.stringify('answer recorded; next question: Would you recommend us?'), content: 'Would you recommend us?' },
      { input: 'Yes, I would', toolCalls: [{ name: TOOL_NAMES.recordAnswer, args: { question: 'Would you recommend us?', answer: 'Yes' } }] },
    ]);
    const first = await run(call, 'Five!');
    first.expect.nextEvent().isFunctionCall({ name: TOOL_NAMES.recordAnswer });
    first.expect.nextEvent().isFunctionCallOutput({ isError: false });
    first.expect.nextEvent().isMessage({ role: 'assistant' });

    const second = await run(call, 'Yes, I would');
    const output = second.expect.containsFunctionCallOutput({ isError: false }).event().item;
    expect(output.output).toContain('all questions are answered');
    await call.controller.abort('test over');
    const written = await results.waitFor(call.callId);
    expect(written.surveyAnswers).toEqual([
      { question: 'How satisfied are you, from 1 to 5?', answer: 'Five' },
      { question: 'Would you recommend us?', answer: 'Yes' },
    ]);
  });

  it('an unknown question is an error for the model', async () => {
    const call = await connectCall([]);
    expect(() => call.controller.recordAnswer('What is your favourite colour?', 'Blue')).toThrow(/unknown question/);
    await call.controller.abort('test over');
  });
});

describe('transfer_call (warm): the overall deadline', () => {
  it('an operator who never gets briefed: at AGENT_WARM_TRANSFER_TIMEOUT_S the transfer is told to stop, the caller hears the profile message, the call goes on', async () => {
    const clock = new TestClock();
    const deadlineMs = 5000;
    let request: WarmTransferRequest | undefined;
    // a port that takes the caller on hold and then never returns, even when told to stop
    const stalled: WarmTransferPort = {
      transfer: (req) => {
        request = req;
        return new Promise<never>(() => undefined);
      },
    };
    const call = await connectCall([{ input: 'Let me talk to an operator', toolCalls: [{ name: TOOL_NAMES.transfer, args: { destination: 'operator' } }] }], {
      profile: 'warm',
      warmTransfer: stalled,
      behaviour: { ...BEHAVIOUR, warmTransferTimeoutMs: deadlineMs },
      clock,
    });
    const running = run(call, 'Let me talk to an operator');
    const asked = await waitFor(() => request, 5000, 'the warm transfer to start');
    await clock.advance(deadlineMs - 1);
    expect(asked.signal?.aborted).toBe(false);
    await clock.advance(1);
    expect(asked.signal?.aborted).toBe(true);
    expect(asked.signal?.reason).toBeInstanceOf(WarmTransferTimeoutError);

    const result = await running;
    result.expect.containsFunctionCallOutput({ isError: true });
    expect(call.tracker.transcript).toContainEqual({ role: 'agent', text: 'Sorry, nobody is free to take your call.' });
    expect(call.controller.isEnding).toBe(false);
    await call.controller.abort('test over');
    expect((await results.waitFor(call.callId)).summary).toContain('warm transfer to operator failed: the transfer did not go through within 5 s');
  });
});

describe('call limits', () => {
  it('silence: the agent says the silence message and hangs up, outcome answered (silence timeout)', async () => {
    const call = await connectCall([], { limits: { maxCallDurationMs: 30_000, silenceTimeoutMs: 150 } });
    const outcome = await call.controller.done();
    expect(outcome).toMatchObject({ outcome: 'answered', reason: 'silence timeout' });
    expect(call.tracker.transcript.at(-1)?.text).toContain("I haven't heard anything");
    expect(sim.deletedRooms).toContain(call.room);
  });

  it('maximum duration: the agent says goodbye and hangs up, outcome answered (max call duration reached)', async () => {
    const call = await connectCall([], { limits: { maxCallDurationMs: 150, silenceTimeoutMs: 30_000 } });
    const outcome = await call.controller.done();
    expect(outcome).toMatchObject({ outcome: 'answered', reason: 'max call duration reached' });
    expect(call.tracker.transcript.at(-1)?.text).toContain('time limit');
  });
});
