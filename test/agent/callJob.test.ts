/**
 * runCall (the worker's job, src/agent/entry.ts) without RTC: a FakeRoom stands in for the LiveKit room (mirroring a
 * simulator room where a SIP call is placed), a FakeJob for agents-js' JobContext, ended in the order agents-js
 * ends jobs; the simulator serves the LiveKit server API and Redis holds the outcomes. The voice session, when a
 * path gets that far, is a text-mode AgentSession driven by a FakeLLM.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initializeLogger, loggerOptions, voice } from '@livekit/agents';
import { DisconnectReason } from '@livekit/rtc-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentSettings, type AgentSettings } from '../../src/agent/agentConfig.js';
import { TOOL_NAMES } from '../../src/agent/callAgent.js';
import { INBOUND_CAMPAIGN_ID, inboundCallId } from '../../src/agent/callPlan.js';
import type { CallController } from '../../src/agent/callController.js';
import { runAnsweringMachineDetection, runCall, type SessionOpener, type SessionRequest } from '../../src/agent/entry.js';
import { OutcomeSpool, replaySpool, spoolDirFor } from '../../src/agent/outcomeSpool.js';
import { parseProfiles } from '../../src/agent/profiles.js';
import type { Logger } from '../../src/core/logger.js';
import { CallStore } from '../../src/core/callStore.js';
import { DEFAULT_CALL_OUTCOME_TIMEOUT_S, loadConfig, type DialerConfig } from '../../src/core/config.js';
import type { LiveKitClients } from '../../src/core/livekitClients.js';
import type { CallResult } from '../../src/core/outcomes.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { systemClock } from '../../src/core/time.js';
import { OUTCOME_WATCHDOG_QUEUE } from '../../src/core/outcomeWatchdogQueue.js';
import { startOutcomeWatchdogWorker } from '../../src/results/outcomeWatchdog.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';
import { FakeJob, FakeRoom, mirrorSimRoom, runJob, type JobRun } from './fakeRoom.js';
import { ResultsReader, nextNumber, simClients } from './helpers.js';

const prefix = uniquePrefix('agent-calljob');
const logger = pino({ level: 'silent' });
const AGENT_NAME = 'calljob-agent';
const BILLING = 'tel:+12025550101';
/**
 * How long runCall waits for the consumer's callee to answer, or an inbound caller to join. Long: the test dials
 * after runCall starts waiting, and on a loaded machine (two full runs at once, load 13) 300 ms ran out before the
 * simulated callee's answer 30 ms after the INVITE, so runCall deleted the room under the test's dial.
 */
const PARTICIPANT_WAIT_MS = 10_000;
/** The wait for tests in which nobody answers or joins: they run until it ends. */
const NO_SHOW_WAIT_MS = 300;

/** Settings pointing at a port where no Redis answers (REDIS_URL and the target connections are made from). */
const unreachableRedis = (port: number) => {
  const url = `redis://127.0.0.1:${port}`;
  return { redisUrl: url, redis: { kind: 'node' as const, url } };
};

/**
 * A port this test holds and that drops every connection: Redis there stays unreachable, and no redis-server another
 * test starts on a "free" port can take it meanwhile (a port that was only free once could be, and the outcome would
 * then be delivered).
 */
async function deadPort(): Promise<number> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}
/** agents-js waits up to 15 s for the entry after a shutdown request; the tests where it would wait use this. */
const SHORT_ENTRY_WAIT_MS = 100;
const TEST_TIMEOUT_MS = 5000;

const profiles = parseProfiles({
  default: {
    instructions: 'You are calling {{first_name}}.',
    greeting: 'Greet the caller.',
    transfer: { destinations: { billing: { target: BILLING } } },
    dtmfMenu: [{ digit: '1', label: 'billing', destination: 'billing' }],
  },
});

let sim: LiveKitSim;
let clients: LiveKitClients;
let results: ResultsReader;
let config: DialerConfig;
let settings: AgentSettings;
/** The calls' outcome spool (each outcome passes through it on its way to Redis). */
let spoolDir: string;

interface TestCall {
  job: FakeJob;
  room: FakeRoom;
  run: JobRun;
  opened: SessionRequest<FakeRoom>[];
}

const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  if (!loggerOptions()) initializeLogger({ pretty: false, level: 'fatal' });
  sim = await startLiveKitSim();
  clients = simClients(sim);
  results = new ResultsReader(testRedisUrl(), prefix);
  config = loadConfig({
    REDIS_URL: testRedisUrl(),
    QUEUE_PREFIX: prefix,
    LIVEKIT_URL: sim.url,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    DIAL_RINGING_TIMEOUT_S: '5',
    LOG_LEVEL: 'silent',
  });
  const base = loadAgentSettings({ OPENAI_API_KEY: 'sk-test' });
  spoolDir = await mkdtemp(join(tmpdir(), 'dialer-calljob-spool-'));
  settings = {
    ...base,
    outcomeSpoolDir: spoolDir,
    participantWaitMs: PARTICIPANT_WAIT_MS,
    limits: { maxCallDurationMs: 30_000, silenceTimeoutMs: 30_000 },
    voicemailPauseMs: 10,
    transferConfirmTimeoutMs: 1000,
  };
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await results.close();
  await sim.close();
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
  await rm(spoolDir, { recursive: true, force: true });
});

/** Text-mode sessions (no room, no audio) with a FakeLLM; `gate` holds the start, `fail` then makes it throw. */
function textSessions(
  job: FakeJob,
  opened: SessionRequest<FakeRoom>[],
  options: { responses?: voice.testing.FakeLLMResponse[]; gate?: Promise<void>; fail?: Error } = {},
): SessionOpener<FakeRoom> {
  return async (request) => {
    opened.push(request);
    await options.gate;
    if (options.fail) throw options.fail;
    const session = new voice.AgentSession({
      llm: new voice.testing.FakeLLM(options.responses ?? []),
      vad: null,
      userAwayTimeout: null,
      turnHandling: { turnDetection: 'manual' },
    });
    job.sessions.push(session);
    await session.start({ agent: request.agent });
    return session;
  };
}

let roomCounter = 0;

function nextRoomName(kind: string): string {
  roomCounter += 1;
  return `calljob-${kind}-${roomCounter}`;
}

/**
 * Starts runCall on a job in `room` (a plain FakeRoom, or one mirroring the simulator room of that name) and ends
 * it the way agents-js does.
 */
function startCall(
  metadata: string | Record<string, unknown>,
  options: {
    room?: FakeRoom;
    roomName?: string;
    roomMetadata?: string;
    config?: DialerConfig;
    settings?: AgentSettings;
    logger?: Logger;
    connectError?: Error;
    responses?: voice.testing.FakeLLMResponse[];
    gate?: Promise<void>;
    fail?: Error;
    entryWaitMs?: number;
  } = {},
): TestCall {
  let room = options.room;
  if (!room) {
    const mirror = mirrorSimRoom(sim, options.roomName ?? nextRoomName('room'));
    cleanups.push(() => mirror.stop());
    room = mirror.room;
  }
  const job = new FakeJob({
    metadata: typeof metadata === 'string' ? metadata : JSON.stringify(metadata),
    roomMetadata: options.roomMetadata,
    room,
    connectError: options.connectError,
  });
  const opened: SessionRequest<FakeRoom>[] = [];
  const entry = runCall(job, {
    config: options.config ?? config,
    settings: options.settings ?? settings,
    profiles,
    logger: options.logger ?? logger,
    openSession: textSessions(job, opened, options),
  });
  const run = runJob(job, entry, options.entryWaitMs);
  cleanups.push(async () => {
    job.requestClose('test over');
    await run.ended;
    await run.entry.catch(() => undefined);
  });
  return { job, room, run, opened };
}

async function resultsFor(callId: string): Promise<CallResult[]> {
  return (await results.all()).filter((r) => r.callId === callId);
}

function consumerMetadata(callId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    phone_number: nextNumber('+1505555'),
    call_id: callId,
    campaign_id: 'calljob',
    attempt: 1,
    dialed_by: 'consumer',
    sip_participant_identity: `sip-${callId}`,
    metadata: { first_name: 'Ada' },
    ...extra,
  };
}

/** The room exists on the server (as after the consumer's CreateDispatch), so deleting it is recorded. */
async function dispatchRoom(room: string, metadata: Record<string, unknown> | string): Promise<void> {
  await clients.dispatch.createDispatch(room, AGENT_NAME, { metadata: typeof metadata === 'string' ? metadata : JSON.stringify(metadata) });
}

/** Dials like the consumer: CreateSIPParticipant into `room`, waiting for the answer; false when it failed. */
async function consumerDials(room: string, phoneNumber: string, identity: string): Promise<boolean> {
  try {
    await clients.sip.createSipParticipant(sim.outboundTrunkId, phoneNumber, room, {
      participantIdentity: identity,
      waitUntilAnswered: true,
      ringingTimeout: 5,
    });
    return true;
  } catch {
    await clients.rooms.deleteRoom(room).catch(() => undefined);
    return false;
  }
}

/** runCall follows the callee once its four room listeners (hang-up, attributes, keypad, room closed) are on. */
async function following(room: FakeRoom): Promise<void> {
  await waitFor(() => (room.lifecycleListeners() === 4 ? true : undefined), 2000, 'runCall following the callee');
}

function historyHas(session: voice.AgentSession, role: 'user' | 'assistant', text: string): boolean {
  return session.history.items.some((item) => item.type === 'message' && item.role === role && (item.textContent ?? '').includes(text));
}

describe('dispatch metadata the agent cannot use', () => {
  it('not JSON and no call id: nothing to report to; the room is deleted and the job ends without connecting', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('bad');
    await dispatchRoom(roomName, '{not json');
    const call = startCall('{not json', { roomName });
    const ended = await call.run.ended;

    expect(ended).toEqual({ closeReason: 'invalid dispatch metadata', entryDone: true });
    expect(call.job.shutdownReasons).toEqual(['invalid dispatch metadata']);
    expect(call.job.connects).toBe(0);
    expect(call.job.shutdownCallbacks).toHaveLength(0);
    expect(sim.deletedRooms).toContain(roomName);
    expect((await results.all()).filter((r) => r.reason?.includes('dispatch metadata is not JSON'))).toEqual([]);
  });

  it('invalid but with a call id: exactly one failed result for that call, in its campaign', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('bad');
    const metadata = consumerMetadata('calljob-bad-1', { sip_participant_identity: undefined });
    await dispatchRoom(roomName, metadata);
    const call = startCall(metadata, { roomName });
    await call.run.ended;

    const written = await resultsFor('calljob-bad-1');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', campaignId: 'calljob', reportedBy: 'agent', durationMs: 0 });
    expect(written[0]?.reason).toMatch(/needs call_id and sip_participant_identity/);
    expect(call.job.shutdownReasons).toEqual(['invalid dispatch metadata']);
    expect(sim.deletedRooms).toContain(roomName);
  });
});

describe('the outcome when Redis is away as the job ends', () => {
  it('is left in the outcome spool, and the log says so, when the job shuts down; the worker replays it', { timeout: 3 * TEST_TIMEOUT_MS }, async () => {
    const spoolBase = await mkdtemp(join(tmpdir(), 'dialer-calljob-spool-'));
    cleanups.push(() => rm(spoolBase, { recursive: true, force: true }));
    const lines: string[] = [];
    const roomName = nextRoomName('spool');
    const metadata = consumerMetadata('calljob-spooled', { sip_participant_identity: undefined });
    await dispatchRoom(roomName, metadata);
    const call = startCall(metadata, {
      roomName,
      config: { ...config, ...unreachableRedis(await deadPort()) },
      settings: { ...settings, outcomeSpoolDir: spoolBase },
      logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
    });
    await call.run.ended;
    expect(lines.some((l) => l.includes('"callId":"calljob-spooled"') && l.includes('left in the spool, the worker replays it'))).toBe(true);
    expect(await resultsFor('calljob-spooled')).toEqual([]);

    // The worker's main process replays it once Redis answers (here: the test's Redis, under the same prefix).
    const connection = new Redis(testRedisUrl());
    const sender = new ResultReporter(connection, prefix);
    try {
      const pass = await replaySpool({ spool: new OutcomeSpool(spoolDirFor(spoolBase, prefix)), sender, logger, minAgeMs: 0 });
      expect(pass).toEqual({ delivered: 1, expired: 0, failed: 0 });
    } finally {
      await sender.close();
      await connection.quit();
    }
    const written = await resultsFor('calljob-spooled');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', campaignId: 'calljob', reportedBy: 'agent' });
  });
});

describe('consumer-dialed calls that never connect (the consumer reports them)', () => {
  it('never answered: no result, and the agent deletes the room so the phone stops ringing into it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('noanswer');
    const metadata = consumerMetadata('calljob-noanswer');
    await dispatchRoom(roomName, metadata);
    const call = startCall(metadata, { roomName, settings: { ...settings, participantWaitMs: NO_SHOW_WAIT_MS } });
    const ended = await call.run.ended;

    expect(ended).toEqual({ closeReason: 'callee timeout', entryDone: true });
    expect(call.job.connects).toBe(1);
    expect(sim.deletedRooms).toContain(roomName);
    expect(call.opened).toEqual([]);
    expect(await resultsFor('calljob-noanswer')).toEqual([]);
    expect(call.room.lifecycleListeners()).toBe(0);
  });

  it('the SIP participant leaves before answering (486 from the network): no result, the room is the consumer’s to delete', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('busy');
    const metadata = consumerMetadata('calljob-busy');
    const number = String(metadata.phone_number);
    sim.network.setBehavior(number, { type: 'busy', afterMs: 50 });
    await dispatchRoom(roomName, metadata);
    const call = startCall(metadata, { roomName });
    const deletedBefore = sim.deletedRooms.length;
    const answered = await consumerDials(roomName, number, 'sip-calljob-busy');
    const ended = await call.run.ended;

    expect(answered).toBe(false);
    expect(ended.closeReason).toBe('callee gone');
    expect(call.opened).toEqual([]);
    expect(await resultsFor('calljob-busy')).toEqual([]);
    // Only the consumer's own DeleteRoom.
    expect(sim.deletedRooms.slice(deletedBefore).filter((r) => r === roomName)).toHaveLength(1);
    expect(sim.requests.filter((r) => r.method === 'DeleteRoom' && r.httpStatus === 404)).toEqual([]);
  });

  it('a callee who declines (603) while the consumer dials: the record notes USER_REJECTED for that attempt, for a consumer taking over', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('decline');
    const metadata = consumerMetadata('calljob-decline');
    const number = String(metadata.phone_number);
    sim.network.setBehavior(number, { type: 'decline', afterMs: 400 });
    const connection = new Redis(testRedisUrl());
    const store = new CallStore(connection, prefix, systemClock);
    try {
      // The consumer recorded attempt 1 and dispatched; then it dials (and, in the case this is for, dies meanwhile).
      await store.beginAttempt({ callId: 'calljob-decline', campaignId: 'calljob', phoneNumber: number, metadata: {} }, 1, roomName);
      await dispatchRoom(roomName, metadata);
      const call = startCall(metadata, { roomName, settings: { ...settings, participantWaitMs: 3000 } });
      expect(await consumerDials(roomName, number, 'sip-calljob-decline')).toBe(false);
      expect((await call.run.ended).closeReason).toBe('callee gone');

      const record = await store.get('calljob', 'calljob-decline');
      expect(record?.state).toBe('dialing');
      expect(record?.attemptObserved).toMatchObject({ attempt: 1, disconnectReason: 'USER_REJECTED', lastCallStatus: 'ringing' });
      expect(await resultsFor('calljob-decline')).toEqual([]);
    } finally {
      await connection.quit();
    }
  });

  it('the room deleted by LiveKit before the answer: the agent does not delete it again (another consumer may have made it anew)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const room = new FakeRoom(nextRoomName('deleted'));
    const metadata = consumerMetadata('calljob-deleted');
    const call = startCall(metadata, { room });
    await waitFor(() => room.lifecycleListeners() || undefined, 1000, 'runCall waiting for the answer');
    const deletesBefore = sim.requests.filter((r) => r.method === 'DeleteRoom').length;
    room.close(DisconnectReason.ROOM_DELETED);
    expect((await call.run.ended).closeReason).toBe('room deleted before the callee answered');
    expect(sim.requests.filter((r) => r.method === 'DeleteRoom').length - deletesBefore).toBe(0);
    expect(await resultsFor('calljob-deleted')).toEqual([]);
  });

  it('sip.callStatus hangup before answering is the same: no result', { timeout: TEST_TIMEOUT_MS }, async () => {
    const room = new FakeRoom(nextRoomName('hangup'));
    const metadata = consumerMetadata('calljob-hangup');
    const call = startCall(metadata, { room });
    await waitFor(() => room.lifecycleListeners() || undefined, 1000, 'runCall waiting for the answer');
    room.join('sip-calljob-hangup', { 'sip.callStatus': 'ringing' });
    room.setAttributes('sip-calljob-hangup', { 'sip.callStatus': 'hangup' });
    expect((await call.run.ended).closeReason).toBe('callee gone');
    expect(await resultsFor('calljob-hangup')).toEqual([]);
  });
});

describe('consumer-dialed calls that connect', () => {
  it('answered: the session listens to the SIP participant; a keypad press reaches the model; end_call ends it as answered', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('answered');
    const callId = 'calljob-answered';
    const identity = `sip-${callId}`;
    const metadata = consumerMetadata(callId);
    const number = String(metadata.phone_number);
    sim.network.setBehavior(number, { type: 'answer', afterMs: 30, callee: { kind: 'human' } });
    await dispatchRoom(roomName, metadata);
    const keypad = '[keypad] The caller pressed 1: billing (destination "billing").';
    const call = startCall(metadata, {
      roomName,
      responses: [
        { input: keypad, content: 'Billing, sure.' },
        { input: 'That is all, bye.', content: 'Goodbye, Ada!', toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }] },
      ],
    });
    expect(await consumerDials(roomName, number, identity)).toBe(true);
    await following(call.room);
    const session = call.job.sessions[0];
    if (!session) throw new Error('no session was opened');
    expect(call.opened[0]?.participantIdentity).toBe(identity);

    call.room.dtmf(identity, '1');
    await waitFor(() => (historyHas(session, 'assistant', 'Billing, sure.') ? true : undefined), 2000, 'the keypad reply');
    const run = session.run({ userInput: 'That is all, bye.' });
    await run.wait();
    run.expect.containsFunctionCall({ name: TOOL_NAMES.endCall });

    const ended = await call.run.ended;
    expect(ended).toEqual({ closeReason: 'agent ended the call', entryDone: true });
    const written = await resultsFor(callId);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'answered', reason: 'agent ended the call', campaignId: 'calljob', attempt: 1 });
    expect(written[0]?.transcript).toContainEqual({ role: 'callee', text: keypad });
    expect(written[0]?.transcript).toContainEqual({ role: 'agent', text: 'Goodbye, Ada!' });
    expect(sim.deletedRooms).toContain(roomName);
  });

  it('the callee hanging up while the session starts ends the call at once: answered, callee hung up', { timeout: TEST_TIMEOUT_MS }, async () => {
    const callId = 'calljob-early-hangup';
    const identity = `sip-${callId}`;
    const room = new FakeRoom(nextRoomName('early'));
    room.join(identity, { 'sip.callStatus': 'active' });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const call = startCall(consumerMetadata(callId), { room, gate });
    await waitFor(() => call.opened[0], 1000, 'the session request');
    room.leave(identity);
    release();
    const ended = await call.run.ended;

    expect(ended).toEqual({ closeReason: 'callee hung up', entryDone: true });
    const written = await resultsFor(callId);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'answered', reason: 'callee hung up' });
  });

  it('an unknown profile fails the answered call: one failed result, the room is deleted, no session', { timeout: TEST_TIMEOUT_MS }, async () => {
    const room = new FakeRoom(nextRoomName('profile'));
    room.join('sip-calljob-profile', { 'sip.callStatus': 'active' });
    const call = startCall(consumerMetadata('calljob-profile', { agent_profile: 'no-such-profile' }), { room });
    const ended = await call.run.ended;

    expect(ended.closeReason).toMatch(/^agent error: .*no-such-profile/);
    expect(call.opened).toEqual([]);
    const written = await resultsFor('calljob-profile');
    expect(written).toHaveLength(1);
    expect(written[0]?.outcome).toBe('failed');
    expect(written[0]?.reason).toMatch(/^agent error: .*no-such-profile/);
  });

  it.each(['constructor', '__proto__'])(
    'a profile named %s is an unknown profile (not a crash): one failed result naming it and the known profiles',
    { timeout: TEST_TIMEOUT_MS },
    async (name) => {
      const callId = `calljob-profile-${name.replace(/_/g, 'u')}`;
      const room = new FakeRoom(nextRoomName('profile'));
      room.join(`sip-${callId}`, { 'sip.callStatus': 'active' });
      const call = startCall(consumerMetadata(callId, { agent_profile: name }), { room });
      await call.run.ended;

      expect(call.opened).toEqual([]);
      const written = await resultsFor(callId);
      expect(written).toHaveLength(1);
      expect(written[0]?.outcome).toBe('failed');
      expect(written[0]?.reason).toBe(`agent error: unknown agent profile "${name}" (known: default)`);
    },
  );

  it('connect() failing is reported as failed even though the consumer dialed, and the room is deleted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('connect');
    const metadata = consumerMetadata('calljob-connect');
    await dispatchRoom(roomName, metadata);
    const call = startCall(metadata, { roomName, connectError: new Error('could not connect to the room') });
    await call.run.ended;

    const written = await resultsFor('calljob-connect');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'agent error: could not connect to the room' });
    expect(sim.deletedRooms).toContain(roomName);
  });
});

describe('self-dialed calls (dispatch with only phone_number)', () => {
  it('486 Busy Here: one result busy with the SIP status, under the room-name id; the session listened first', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('self486');
    const number = nextNumber('+1505556');
    sim.network.setBehavior(number, { type: 'busy' });
    const call = startCall({ phone_number: number }, { roomName });
    const ended = await call.run.ended;

    expect(ended).toEqual({ closeReason: 'SIP 486 Busy Here', entryDone: true });
    expect(call.opened.map((o) => o.participantIdentity)).toEqual([`sip-${roomName}`]);
    const written = await resultsFor(roomName);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'busy', sipStatusCode: 486, sipStatus: 'Busy Here', campaignId: 'default' });
    const dialed = sim.calls.filter((c) => c.phoneNumber === number);
    expect(dialed).toHaveLength(1);
    expect(dialed[0]).toMatchObject({ room: roomName, identity: `sip-${roomName}` });
    expect(sim.deletedRooms).toContain(roomName);
  });

  it('404 Not Found: one result invalid_number', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('self404');
    const number = nextNumber('+1505556');
    sim.network.setBehavior(number, { type: 'not_found' });
    const call = startCall({ phone_number: number, call_id: 'calljob-self404' }, { roomName });
    await call.run.ended;

    const written = await resultsFor('calljob-self404');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'invalid_number', sipStatusCode: 404 });
  });

  it('no outbound trunk configured: failed, without dialing', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('notrunk');
    const number = nextNumber('+1505556');
    await clients.rooms.createRoom({ name: roomName });
    const call = startCall({ phone_number: number }, { roomName, config: { ...config, sipOutboundTrunkId: undefined } });
    await call.run.ended;

    const written = await resultsFor(roomName);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'SIP_OUTBOUND_TRUNK_ID is not set' });
    expect(sim.calls.filter((c) => c.phoneNumber === number)).toEqual([]);
    expect(sim.deletedRooms).toContain(roomName);
  });

  it('answered, then the callee hangs up: one result answered', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('selfok');
    const number = nextNumber('+1505556');
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'human' } });
    const call = startCall({ phone_number: number }, { roomName });
    await following(call.room);
    expect(call.room.remoteParticipants.get(`sip-${roomName}`)?.attributes['sip.callStatus']).toBe('active');
    // No consumer records this call: the agent does, and arms the outcome watchdog for it.
    const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    const watchdogs = new Queue(OUTCOME_WATCHDOG_QUEUE, { connection, prefix });
    try {
      const record = await waitFor(() => new CallStore(connection, prefix, systemClock).get('default', roomName), 2000, 'the call record');
      expect(record).toMatchObject({ state: 'in_call', phoneNumber: number, room: roomName });
      expect(await watchdogs.getJob(roomName)).toBeDefined();
    } finally {
      await watchdogs.close();
      await connection.quit();
    }
    expect(sim.hangupCallee(roomName, `sip-${roomName}`)).toBe(true);
    const ended = await call.run.ended;

    expect(ended).toEqual({ closeReason: 'callee hung up', entryDone: true });
    const written = await resultsFor(roomName);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'answered', reason: 'callee hung up' });
  });
  it('answered and hung up before the agent follows (its room never showed the callee): ends at once, not by the silence timer', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('selfgone');
    const number = nextNumber('+1505556');
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'human' } });
    // The callee hangs up the moment they answer, before the reply to the dial request is even written.
    const hangUpOnAnswer = (ev: { room: string; identity: string }) => {
      if (ev.room === roomName) sim.hangupCallee(roomName, ev.identity);
    };
    sim.events.on('call_answered', hangUpOnAnswer);
    cleanups.push(() => void sim.events.off('call_answered', hangUpOnAnswer));
    const call = startCall({ phone_number: number }, { room: new FakeRoom(roomName) });
    const ended = await call.run.ended;

    expect(ended).toEqual({ closeReason: 'callee hung up before the conversation started', entryDone: true });
    const written = await resultsFor(roomName);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'answered', reason: 'callee hung up before the conversation started' });
  });
});

describe('inbound calls', () => {
  const CALLER = '+12025550123';

  it('the caller joins, is greeted, hangs up: answered under in-<hash of the room>, campaign inbound, caller in the summary', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = `call-_${CALLER.slice(1)}_${nextRoomName('in')}`;
    await clients.rooms.createRoom({ name: roomName });
    const room = new FakeRoom(roomName);
    const call = startCall('', { room });
    room.join('sip-caller', { 'sip.phoneNumber': CALLER, 'sip.callStatus': 'active' });
    await following(room);
    expect(call.opened[0]?.participantIdentity).toBe('sip-caller');
    room.leave('sip-caller');
    await call.run.ended;

    const written = await resultsFor(inboundCallId(roomName));
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'answered', reason: 'callee hung up', campaignId: 'inbound' });
    expect(written[0]?.summary).toContain(`inbound call from ${CALLER}`);
    expect(sim.deletedRooms).toContain(roomName);
  });

  it('a connected caller is in_call in the campaign and watched: a job that dies without reporting still ends failed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = `call-_${CALLER.slice(1)}_${nextRoomName('in-watched')}`;
    const callId = inboundCallId(roomName);
    await clients.rooms.createRoom({ name: roomName });
    const room = new FakeRoom(roomName);
    startCall('', { room });
    room.join('sip-caller', { 'sip.phoneNumber': CALLER, 'sip.callStatus': 'active' });
    await following(room);

    const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    const store = new CallStore(connection, prefix, systemClock);
    const reporter = new ResultReporter(connection, prefix);
    const watchdogs = new Queue(OUTCOME_WATCHDOG_QUEUE, { connection, prefix });
    const checker = startOutcomeWatchdogWorker({ connection, prefix, store, reporter, clock: systemClock, logger });
    try {
      const record = await waitFor(() => store.get(INBOUND_CAMPAIGN_ID, callId), 2000, 'the inbound call record');
      expect(record).toMatchObject({ state: 'in_call', phoneNumber: CALLER, room: roomName, attempts: 1 });
      const armed = await watchdogs.getJob(callId);
      // The default CALL_OUTCOME_TIMEOUT_S, since the call's own limit (30 s) plus the margin is shorter.
      expect(armed?.opts.delay).toBe(DEFAULT_CALL_OUTCOME_TIMEOUT_S * 1000);

      // The job process dies here (no report, no shutdown callback); time passes until the check is due.
      await armed?.promote();
      const [written] = await waitFor(async () => {
        const found = await resultsFor(callId);
        return found.length > 0 ? found : undefined;
      }, 5000, 'the watchdog result');
      expect(written).toMatchObject({ outcome: 'failed', campaignId: INBOUND_CAMPAIGN_ID, reason: expect.stringContaining('no outcome reported by the agent') });
    } finally {
      await checker.close();
      await watchdogs.close();
      await reporter.close();
      await connection.quit();
    }
  });

  it('nobody joins in time: failed, and the room is deleted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('in-empty');
    await clients.rooms.createRoom({ name: roomName });
    const call = startCall('', { room: new FakeRoom(roomName), settings: { ...settings, participantWaitMs: NO_SHOW_WAIT_MS } });
    await call.run.ended;

    const written = await resultsFor(inboundCallId(roomName));
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'no caller joined the room within 0 s' });
    expect(sim.deletedRooms).toContain(roomName);
    expect(call.opened).toEqual([]);
  });

  it('the room closes before the caller is there: failed (the caller hung up)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const room = new FakeRoom(nextRoomName('in-closed'));
    const call = startCall('', { room });
    await waitFor(() => (call.job.connects > 0 ? true : undefined), 1000);
    room.close(DisconnectReason.ROOM_DELETED);
    await call.run.ended;

    const written = await resultsFor(inboundCallId(room.name ?? ''));
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'the caller hung up before the agent answered' });
  });
});

describe('the job shut down before the conversation', () => {
  it('an answered consumer call whose session is still starting: failed by the shutdown callback, room deleted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('shut-answered');
    const callId = 'calljob-shut-answered';
    const metadata = consumerMetadata(callId);
    await dispatchRoom(roomName, metadata);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const call = startCall(metadata, { roomName, gate, fail: new Error('the room is gone'), entryWaitMs: SHORT_ENTRY_WAIT_MS });
    await waitFor(() => call.job.connects || undefined, 1000);
    call.room.join(`sip-${callId}`, { 'sip.callStatus': 'active' });
    await waitFor(() => call.opened[0], 1000, 'the session request');

    call.job.requestClose('shutdown request');
    const ended = await call.run.ended;
    expect(ended).toEqual({ closeReason: 'shutdown request', entryDone: false });
    release();
    await call.run.entry;

    const written = await resultsFor(callId);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'the agent shut down during the call' });
    expect(sim.deletedRooms).toContain(roomName);
  });

  it('during the conversation: failed (agents-js closes the session first, so the close reason names it), room deleted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const callId = 'calljob-shut-talking';
    const roomName = nextRoomName('shut-talking');
    await clients.rooms.createRoom({ name: roomName });
    const room = new FakeRoom(roomName);
    room.join(`sip-${callId}`, { 'sip.callStatus': 'active' });
    const call = startCall(consumerMetadata(callId), { room, entryWaitMs: SHORT_ENTRY_WAIT_MS });
    await following(room);

    call.job.requestClose('shutdown request');
    await call.run.ended;
    await call.run.entry;

    const written = await resultsFor(callId);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'the agent session closed (user_initiated) without an outcome' });
    expect(sim.deletedRooms).toContain(roomName);
    expect(call.job.shutdownReasons).toEqual(['the agent session closed (user_initiated) without an outcome']);
  });

  it('an inbound call with no caller yet: failed (leaving the room reads as the caller hanging up)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('shut-in');
    await clients.rooms.createRoom({ name: roomName });
    const room = new FakeRoom(roomName);
    const call = startCall('', { room, entryWaitMs: SHORT_ENTRY_WAIT_MS });
    await waitFor(() => call.job.connects || undefined, 1000);
    call.job.requestClose('shutdown request');
    await call.run.ended;
    await call.run.entry;

    const written = await resultsFor(inboundCallId(roomName));
    expect(written).toHaveLength(1);
    // agents-js disconnects from the room before it runs shutdown callbacks: the wait for the caller sees the room close.
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'the caller hung up before the agent answered' });
    expect(sim.deletedRooms).toContain(roomName);
  });

  it('a consumer call still ringing: no result, and the room is deleted so the callee does not answer into an empty room', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('shut-ringing');
    const callId = 'calljob-shut-ringing';
    const metadata = consumerMetadata(callId);
    const number = String(metadata.phone_number);
    sim.network.setBehavior(number, { type: 'answer', afterMs: 3000, callee: { kind: 'human' } });
    await dispatchRoom(roomName, metadata);
    const call = startCall(metadata, { roomName, entryWaitMs: SHORT_ENTRY_WAIT_MS });
    const dialing = consumerDials(roomName, number, `sip-${callId}`);
    await waitFor(() => (call.room.remoteParticipants.get(`sip-${callId}`)?.attributes['sip.callStatus'] === 'ringing' ? true : undefined), 2000);

    call.job.requestClose('shutdown request');
    await call.run.ended;
    await call.run.entry;

    expect(await dialing).toBe(false);
    expect(sim.deletedRooms).toContain(roomName);
    expect(sim.calls.find((c) => c.phoneNumber === number)?.result).toBe('failed');
    expect(await resultsFor(callId)).toEqual([]);
  });

  it('a self-dialed call still ringing: failed by the shutdown callback, and the room is deleted so the call is not answered into it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const roomName = nextRoomName('shut-selfdial');
    const number = nextNumber('+1505557');
    sim.network.setBehavior(number, { type: 'answer', afterMs: 3000, callee: { kind: 'human' } });
    const call = startCall({ phone_number: number }, { roomName, entryWaitMs: SHORT_ENTRY_WAIT_MS });
    await waitFor(() => (call.room.remoteParticipants.get(`sip-${roomName}`)?.attributes['sip.callStatus'] === 'ringing' ? true : undefined), 2000);

    call.job.requestClose('shutdown request');
    await call.run.ended;
    await call.run.entry;

    const written = await resultsFor(roomName);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ outcome: 'failed', reason: 'the agent shut down while placing the call' });
    expect(sim.deletedRooms).toContain(roomName);
    expect(sim.calls.find((c) => c.phoneNumber === number)?.result).toBe('failed');
  });
});

describe('runAnsweringMachineDetection', () => {
  type Prediction = Awaited<ReturnType<voice.AMD['execute']>>;

  function detector(outcome: Prediction | Error) {
    let closed = 0;
    return {
      get closed() {
        return closed;
      },
      async execute(): Promise<Prediction> {
        if (outcome instanceof Error) throw outcome;
        return outcome;
      },
      async aclose(): Promise<void> {
        closed += 1;
        throw new Error('closing fails too');
      },
    };
  }

  function controller() {
    const calls: string[] = [];
    const stub: Pick<CallController, 'leaveVoicemail' | 'end'> = {
      async leaveVoicemail(source) {
        calls.push(`voicemail:${source}`);
        return 'left';
      },
      async end(fallback, options) {
        calls.push(`end:${fallback.outcome}:${fallback.reason}:${options.hangup}`);
        return { callId: 'x', campaignId: 'c', outcome: fallback.outcome, reason: fallback.reason, reportedBy: 'agent', durationMs: 0, endedAt: 0 };
      },
    };
    return { calls, stub };
  }

  function prediction(category: voice.AMDCategory): Prediction {
    return {
      type: 'amd_prediction',
      category,
      reason: 'test',
      transcript: '',
      rawResponse: '',
      isMachine: category !== voice.AMDCategory.HUMAN,
      speechDurationMs: 0,
      delayMs: 0,
    };
  }

  it('a voicemail greeting leaves the message (amd); an unavailable mailbox ends as voicemail and hangs up; a human changes nothing', async () => {
    for (const [category, expected] of [
      [voice.AMDCategory.MACHINE_VM, ['voicemail:amd']],
      [voice.AMDCategory.MACHINE_UNAVAILABLE, ['end:voicemail:answering machine: mailbox unavailable, no message left:true']],
      [voice.AMDCategory.HUMAN, []],
    ] as const) {
      const amd = detector(prediction(category));
      const { calls, stub } = controller();
      await runAnsweringMachineDetection(amd, stub, logger);
      expect(calls).toEqual(expected);
      expect(amd.closed).toBe(1);
    }
  });

  it('a detector that fails leaves the conversation going, and is still closed', async () => {
    const amd = detector(new Error('classifier unreachable'));
    const { calls, stub } = controller();
    await expect(runAnsweringMachineDetection(amd, stub, logger)).resolves.toBeUndefined();
    expect(calls).toEqual([]);
    expect(amd.closed).toBe(1);
  });
});
