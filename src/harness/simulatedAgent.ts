import { initializeLogger, loggerOptions, voice } from '@livekit/agents';
import { pino } from 'pino';
import { createLiveKitClients } from '../core/livekitClients.js';
import type { Logger } from '../core/logger.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { ResultReporter } from '../core/reportResult.js';
import { DEFAULT_CALL_OUTCOME_TIMEOUT_S } from '../core/config.js';
import { SECOND, sleep, systemClock } from '../core/time.js';
import type { AttemptEndObservation } from '../core/callStore.js';
import type { CallAnsweredEvent, CallEndedEvent, Callee, ParticipantLeftEvent, SimEvents } from '../sim/index.js';
import {
  DEFAULT_OUTCOME_SPOOL_DIR,
  DEFAULT_PROFILES_FILE,
  DEFAULT_PROFILE_NAME,
  DEFAULT_TRANSFER_RINGING_TIMEOUT_S,
  type CallLimits,
} from '../agent/agentConfig.js';
import { AgentCallBook } from '../agent/agentCallBook.js';
import { buildCallAgent } from '../agent/callAgent.js';
import { CallServerApi, type CallServerApiClients } from '../agent/callServerApi.js';
import { SIP_ATTR } from '../core/sipAttributes.js';
import { CallController, type CallBehaviour } from '../agent/callController.js';
import { DispatchMetadataError, parseCallPlan, redactNumbersIn, type CallPlan } from '../agent/callPlan.js';
import { buildCallScript } from './calleeScript.js';
import { DurableResultReporter, OutcomeSpool, spoolDirFor, startSpoolReplayer } from '../agent/outcomeSpool.js';
import { CallOutcomeTracker, type OutcomeDecision } from '../agent/outcomeTracker.js';
import { loadProfiles, resolveCallProfile, type CallProfile, type ProfileCatalog } from '../agent/profiles.js';
import { playOut, speak } from '../agent/speech.js';
import { apiWarmTransfer } from '../agent/warmTransfer.js';

/** The parts of a running `src/sim` LiveKitSim the simulated agent uses. */
export interface SimLike {
  url: string;
  apiKey: string;
  apiSecret: string;
  events: SimEvents;
  /** Trunk for calls the agent places itself (self-dial, warm-transfer operators). */
  outboundTrunkId?: string;
}

/** Timings of simulated calls (short defaults: the simulated callee answers at once and never pauses to think). */
export interface SimulatedTiming {
  /** How long a consumer-dialed call may take to be answered (or an inbound caller to join) before the agent gives up on it. */
  answerWaitMs: number;
  /** Ringing timeout when the agent dials (self-dial and warm-transfer operators). */
  ringingTimeoutS: number;
  limits: CallLimits;
  behaviour: CallBehaviour;
  /** Longest wait for one scripted turn (the model's reply and its tools). */
  turnTimeoutMs: number;
}

export const DEFAULT_SIMULATED_TIMING: SimulatedTiming = {
  answerWaitMs: 60 * SECOND,
  ringingTimeoutS: 30,
  limits: { maxCallDurationMs: 60 * SECOND, silenceTimeoutMs: 1500 },
  behaviour: { transferConfirmTimeoutMs: 3 * SECOND, transferRingingTimeoutS: DEFAULT_TRANSFER_RINGING_TIMEOUT_S, voicemailPauseMs: 100 },
  turnTimeoutMs: 30 * SECOND,
};

export interface SimulatedAgentOptions {
  sim: SimLike;
  redisUrl: string;
  queuePrefix: string;
  agentName: string;
  logger?: Logger;
  /** Profiles to use; else read from `profilesFile` (default: the shipped profiles/profiles.json). */
  profiles?: ProfileCatalog;
  profilesFile?: string;
  defaultProfile?: string;
  timing?: Partial<SimulatedTiming>;
  /** Log level of agents-js' own logger when this process has not set one up (default: `fatal`). */
  frameworkLogLevel?: string;
  /** Where outcomes wait while Redis is away (default: AGENT_OUTCOME_SPOOL_DIR's default); replayed from here too. */
  outcomeSpoolDir?: string;
  /** How long a spooled outcome is worth sending (default: CALL_OUTCOME_TIMEOUT_S's default). */
  outcomeTimeoutMs?: number;
}

export interface SimulatedAgent {
  /** Stops taking calls, ends calls in progress (reporting `failed` where no outcome was decided) and waits for them. Idempotent. */
  close(): Promise<void>;
  /** Resolves when no simulated call is in progress. */
  idle(): Promise<void>;
}

const NOT_CONNECTED = Symbol('not connected');
/** The call failed or its room went away: the consumer has deleted (or will delete) the room itself. */
const CALL_FAILED = Symbol('call failed');
const SESSION_CLOSE_TIMEOUT_MS = 5 * SECOND;
/** Grace beyond the maximum call duration before a call that did not end is ended as failed. */
const END_GRACE_MS = 10 * SECOND;
const SELF_DIAL_ANSWER_EVENT_WAIT_MS = 2 * SECOND;
const GREETING_PLAYOUT_TIMEOUT_MS = 10 * SECOND;

function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Resolves to `value` after `ms`, or earlier when `signal` aborts (also to `value`). */
function delay<T>(ms: number, value: T, signal?: AbortSignal): Promise<T> {
  return sleep(ms, signal).then(
    () => value,
    () => value,
  );
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

interface SimCallDeps {
  sim: SimLike;
  clients: CallServerApiClients;
  /** The room's metadata (a dispatch rule's roomConfig may name the campaign of inbound calls). */
  roomMetadata: (room: string) => Promise<string | undefined>;
  reporter: DurableResultReporter;
  /** Records and watches the calls the agent connects itself, as runCall does. */
  book: AgentCallBook;
  profiles: () => Promise<ProfileCatalog>;
  defaultProfile: string;
  timing: SimulatedTiming;
  logger: Logger;
}

/**
 * One dispatched room, run in agents-js text mode: the callee's scripted lines go in through session.run, a
 * ScriptedLLM plays the model, and the tools make their real LiveKit API calls against the simulator. An inbound
 * dispatch (no phone number) waits for the caller's SIP participant to join the room (in the simulator, a call
 * placed into it), greets, and reports under `in-<hash of the room>` (inboundCallId).
 */
class SimulatedCall {
  private readonly answered = deferred<CallAnsweredEvent | typeof NOT_CONNECTED | typeof CALL_FAILED>();
  private readonly stop = new AbortController();
  private controller: CallController | undefined;
  /** Each SIP participant's last `sip.callStatus` in this room, as the room would show it. */
  private readonly callStatus = new Map<string, string>();
  /** SIP participants that left before they answered, with what the room showed of it. */
  private readonly leftUnanswered = new Map<string, AttemptEndObservation>();
  /** SIP participants whose `sip.callStatus` reached `ringing`. */
  private readonly rang = new Set<string>();

  constructor(
    readonly room: string,
    private readonly metadata: string,
    private readonly deps: SimCallDeps,
  ) {}

  onAnswered(ev: CallAnsweredEvent): void {
    this.callStatus.set(ev.identity, 'active');
    this.answered.resolve(ev);
  }

  /** A SIP participant's `sip.callStatus` changed (dialing, ringing). */
  onCallStatus(identity: string, status: string): void {
    this.callStatus.set(identity, status);
    if (status === 'ringing') this.rang.add(identity);
  }

  /** A participant left the room (rtc-node's ParticipantDisconnected with its disconnect reason). */
  onParticipantLeft(ev: ParticipantLeftEvent): void {
    const lastCallStatus = this.callStatus.get(ev.identity);
    if (ev.kind !== 'SIP' || lastCallStatus === 'active') return;
    this.leftUnanswered.set(ev.identity, { disconnectReason: ev.reason, lastCallStatus, rang: this.rang.has(ev.identity), endedAt: ev.at });
  }

  /** The call failed before it was answered, or its room went away. */
  onNotConnected(): void {
    this.answered.resolve(CALL_FAILED);
  }

  onCallEnded(ev: CallEndedEvent): void {
    // A transfer's own flow decides its outcome; every other ending is the callee (or the room) going away.
    if (ev.reason === 'transferred' || !this.controller || ev.identity !== this.controller.callee) return;
    const detail = ev.reason === 'callee_hangup' ? 'callee hung up' : `call ended (${ev.reason.replace(/_/g, ' ')})`;
    void this.controller.calleeLeft(detail);
  }

  /** Ends the call now (shutdown): `failed` unless an outcome was already decided. */
  shutdown(): void {
    this.stop.abort();
    this.answered.resolve(NOT_CONNECTED);
    void this.controller?.abort('the simulated agent shut down during the call');
  }

  private controlFor(redactNames: boolean, log: Logger): CallServerApi {
    return new CallServerApi({ clients: this.deps.clients, roomName: this.room, logger: log, redactNames });
  }

  private async readPlan(): Promise<CallPlan> {
    const plan = parseCallPlan(this.metadata, this.room);
    if (plan.direction.kind !== 'inbound') return plan;
    return parseCallPlan(this.metadata, this.room, await this.deps.roomMetadata(this.room));
  }

  async run(): Promise<void> {
    let plan: CallPlan;
    try {
      plan = await this.readPlan();
    } catch (err) {
      const log = this.deps.logger.child({ room: redactNumbersIn(this.room) });
      const bad = err instanceof DispatchMetadataError ? err : undefined;
      await this.reportWithoutCall(bad?.callId, bad?.campaignId ?? 'default', undefined, {
        outcome: 'failed',
        reason: (err as Error).message,
      });
      await this.controlFor(true, log).hangup('invalid dispatch metadata');
      return;
    }
    const direction = plan.direction;
    // An inbound room (and call id) is named after the caller: logs redact the number.
    const inbound = direction.kind === 'inbound';
    const log = this.deps.logger.child({ room: inbound ? redactNumbersIn(this.room) : this.room });
    const control = this.controlFor(inbound, log);
    const tracker = new CallOutcomeTracker({
      callId: plan.callId,
      campaignId: plan.campaignId,
      attempt: plan.attempt,
      logCallId: inbound ? redactNumbersIn(plan.callId) : undefined,
      sink: this.deps.reporter,
      logger: log,
    });

    let answer: CallAnsweredEvent | typeof NOT_CONNECTED | typeof CALL_FAILED = NOT_CONNECTED;
    if (direction.kind === 'inbound') {
      // The caller's call is the agent's to report from the start: not joining is a failure too.
      answer = await Promise.race([this.answered.promise, delay(this.deps.timing.answerWaitMs, NOT_CONNECTED)]);
      if (typeof answer !== 'object') {
        const reason = this.stop.signal.aborted
          ? 'the simulated agent shut down before the caller was connected'
          : answer === CALL_FAILED
            ? 'the caller hung up before the agent answered'
            : 'no caller joined the room in time';
        await tracker.finish({ outcome: 'failed', reason });
        await control.hangup(reason);
        return;
      }
      tracker.markConnected();
      const state = await control.participantState(answer.identity).catch(() => undefined);
      const number = state?.present ? state.attributes[SIP_ATTR.phoneNumber] : undefined;
      if (number) tracker.setCaller(number);
    } else if (direction.kind === 'consumer_dialed') {
      answer = await Promise.race([this.answered.promise, delay(this.deps.timing.answerWaitMs, NOT_CONNECTED)]);
      if (answer === CALL_FAILED) {
        // The consumer reports it; what the room showed of the failure goes on the record (as runCall does).
        const seen = this.leftUnanswered.get(direction.participantIdentity);
        if (seen) await this.deps.book.attemptEnded(plan, seen);
        return;
      }
      if (answer === NOT_CONNECTED) {
        // Not answered in time, or the agent is shutting down: the consumer reports whatever the call does, and the
        // room goes so the phone does not ring into a room nobody serves (the consumer then sees a platform failure
        // and dials again later). A call that failed (above) is the consumer's alone, room included.
        await control.hangup('the callee did not connect');
        return;
      }
      tracker.markConnected();
    }

    let profile: CallProfile;
    try {
      profile = resolveCallProfile({
        catalog: await this.deps.profiles(),
        name: plan.profileName,
        defaultName: this.deps.defaultProfile,
        override: plan.profileOverride,
        values: plan.values,
        limits: this.deps.timing.limits,
      });
    } catch (err) {
      // Once the call is the agent's (answered, or about to be dialed by it), a profile it cannot use fails the call.
      log.error({ err: (err as Error).message }, 'no usable profile for this call');
      await tracker.finish({ outcome: 'failed', reason: (err as Error).message });
      await control.hangup('no usable profile');
      return;
    }
    const callIdentity = { callId: plan.callId, campaignId: plan.campaignId, metadata: {} };
    if (direction.kind === 'inbound') {
      await this.deps.book.connected({ ...callIdentity, phoneNumber: tracker.caller ?? '' }, this.room, profile.limits.maxCallDurationMs);
    }

    if (direction.kind === 'self_dial') {
      const trunkId = this.deps.sim.outboundTrunkId;
      if (!trunkId) {
        await tracker.finish({ outcome: 'failed', reason: 'the simulator has no outbound trunk' });
        return;
      }
      await this.deps.book.dialing({ ...callIdentity, phoneNumber: direction.phoneNumber }, this.room);
      const dialed = await control.dial(direction.phoneNumber, {
        trunkId,
        participantIdentity: direction.participantIdentity,
        ringingTimeoutS: this.deps.timing.ringingTimeoutS,
      });
      if (!dialed.ok) {
        await tracker.finish(dialed.decision);
        await control.hangup(dialed.decision.reason);
        return;
      }
      await this.deps.book.connected({ ...callIdentity, phoneNumber: direction.phoneNumber }, this.room, profile.limits.maxCallDurationMs);
      answer = await Promise.race([this.answered.promise, delay(SELF_DIAL_ANSWER_EVENT_WAIT_MS, NOT_CONNECTED)]);
    }
    const connected = typeof answer === 'object' ? answer : undefined;
    const callee: Callee = connected?.callee ?? { kind: 'human', lines: ['Hello?'] };
    const identity = connected?.identity ?? (direction.kind === 'inbound' ? '' : direction.participantIdentity);
    await this.converse({ plan, profile, tracker, control, callee, identity, inbound, log });
  }

  private async converse(call: {
    plan: CallPlan;
    profile: CallProfile;
    tracker: CallOutcomeTracker;
    control: CallServerApi;
    callee: Callee;
    identity: string;
    inbound: boolean;
    log: Logger;
  }): Promise<void> {
    const { plan, profile, tracker, control, callee, identity, inbound, log } = call;
    const { timing, sim } = this.deps;
    const script = buildCallScript(callee, profile, { inbound });
    const pending = [...script.turns];
    const controller = new CallController({
      profile,
      tracker,
      serverApi: control,
      behaviour: timing.behaviour,
      outbound: !inbound,
      calleeIdentity: identity,
      warmTransfer: sim.outboundTrunkId
        ? apiWarmTransfer({
            serverApi: control,
            sipTrunkId: sim.outboundTrunkId,
            ringingTimeoutS: timing.behaviour.transferRingingTimeoutS,
            logger: log,
            onBriefing: (briefing) => tracker.addTranscript('system', `operator briefing: ${briefing}`),
          })
        : undefined,
      sendDtmf: async (digits) => {
        const keys = digits.join('');
        tracker.addTranscript('system', `DTMF sent: ${keys}`);
        const reply = script.ivrReply(keys);
        if (reply !== undefined) pending.unshift(reply);
        return `sent DTMF ${keys}`;
      },
      logger: log,
    });
    this.controller = controller;
    const session = new voice.AgentSession({ llm: script.llm, vad: null, userAwayTimeout: null, turnHandling: { turnDetection: 'manual' } });
    try {
      await session.start({ agent: buildCallAgent(controller) });
      controller.attach(session);
      if (this.stop.signal.aborted) void controller.abort('the simulated agent shut down during the call');
      // Inbound: the agent speaks first (the real worker has the model greet from the profile's greeting).
      if (script.greeting && !controller.isEnding) await playOut(speak(session, script.greeting), GREETING_PLAYOUT_TIMEOUT_MS);

      for (let turn = pending.shift(); turn !== undefined && !controller.isEnding; turn = pending.shift()) {
        const result = session.run({ userInput: turn });
        const finished = await Promise.race([
          result.wait().then(
            () => true,
            () => true,
          ),
          delay(timing.turnTimeoutMs, false, this.stop.signal),
        ]);
        if (!finished) log.warn({ turn }, 'a scripted turn did not finish in time');
        if (this.stop.signal.aborted) break;
      }
      // The callee has nothing more to say: the silence timeout (or a tool still running) ends the call.
      const budget = profile.limits.maxCallDurationMs + END_GRACE_MS;
      const ended = await Promise.race([controller.done().then(() => true), delay(budget, false)]);
      if (!ended) await controller.abort('the simulated call did not end in time');
    } catch (err) {
      log.error({ err }, 'simulated call failed');
      await controller.abort(`agent error: ${(err as Error).message}`);
    } finally {
      await controller.abort('the simulated call ended without an outcome');
      await Promise.race([session.close().catch(() => undefined), delay(SESSION_CLOSE_TIMEOUT_MS, undefined)]);
    }
    log.debug({ callId: inbound ? redactNumbersIn(plan.callId) : plan.callId, outcome: tracker.decision?.outcome }, 'simulated call done');
  }

  private async reportWithoutCall(
    callId: string | undefined,
    campaignId: string,
    attempt: number | undefined,
    decision: OutcomeDecision,
  ): Promise<void> {
    const tracker = new CallOutcomeTracker({ callId, campaignId, attempt, sink: this.deps.reporter, logger: this.deps.logger });
    await tracker.finish(decision);
  }
}

/**
 * Runs the agent's call logic against `src/sim`: for each dispatch to `agentName`, waits for the consumer's call
 * to be answered (or places it, for a dispatch with only a phone number), then plays the conversation in agents-js
 * text mode with a scripted model built from the callee's script, making the real LiveKit API calls (hang-up,
 * transfers, dialing) against the simulator and reporting each call's one outcome to `call-results`.
 */
export async function startSimulatedAgent(options: SimulatedAgentOptions): Promise<SimulatedAgent> {
  const logger = (options.logger ?? silentLogger()).child({ component: 'simulated-agent' });
  if (!loggerOptions()) initializeLogger({ pretty: false, level: options.frameworkLogLevel ?? 'fatal' });
  const timing: SimulatedTiming = {
    ...DEFAULT_SIMULATED_TIMING,
    ...options.timing,
    limits: { ...DEFAULT_SIMULATED_TIMING.limits, ...options.timing?.limits },
    behaviour: { ...DEFAULT_SIMULATED_TIMING.behaviour, ...options.timing?.behaviour },
  };

  const connection = createProducerConnection(options.redisUrl);
  connection.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  try {
    await waitUntilReady(connection);
  } catch (err) {
    connection.disconnect();
    throw err;
  }
  const outcomeTimeoutMs = options.outcomeTimeoutMs ?? DEFAULT_CALL_OUTCOME_TIMEOUT_S * SECOND;
  // As the real worker: outcomes are spooled before they are sent, retried while Redis is away, and whatever an
  // earlier (closed or crashed) agent left in the spool is replayed.
  const spool = new OutcomeSpool(spoolDirFor(options.outcomeSpoolDir ?? DEFAULT_OUTCOME_SPOOL_DIR, options.queuePrefix));
  const reporter = new DurableResultReporter({ connection, queuePrefix: options.queuePrefix, spool, deadlineMs: outcomeTimeoutMs, logger });
  const replaySender = new ResultReporter(connection, options.queuePrefix, logger);
  const replayer = startSpoolReplayer({ spool, sender: replaySender, logger });
  const book = new AgentCallBook(connection, options.queuePrefix, systemClock, outcomeTimeoutMs, logger);
  const { sim } = options;
  const clients = createLiveKitClients({ url: sim.url, apiKey: sim.apiKey, apiSecret: sim.apiSecret });

  let catalog: Promise<ProfileCatalog> | undefined;
  const profiles = () => {
    catalog ??= options.profiles ? Promise.resolve(options.profiles) : loadProfiles(options.profilesFile ?? DEFAULT_PROFILES_FILE);
    return catalog;
  };

  const roomMetadata = async (room: string): Promise<string | undefined> => {
    try {
      const [info] = await clients.rooms.listRooms([room]);
      return info?.metadata;
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'could not read the room metadata');
      return undefined;
    }
  };

  const calls = new Map<string, SimulatedCall>();
  const inFlight = new Set<Promise<void>>();
  const earlyAnswers = new Map<string, CallAnsweredEvent>();
  let closing: Promise<void> | undefined;

  const onDispatch = (ev: { room: string; agentName: string; metadata: string }) => {
    if (closing || ev.agentName !== options.agentName || calls.has(ev.room)) return;
    const call = new SimulatedCall(ev.room, ev.metadata, {
      sim,
      clients,
      roomMetadata,
      reporter,
      book,
      profiles,
      defaultProfile: options.defaultProfile ?? DEFAULT_PROFILE_NAME,
      timing,
      logger,
    });
    calls.set(ev.room, call);
    const early = earlyAnswers.get(ev.room);
    if (early) call.onAnswered(early);
    earlyAnswers.delete(ev.room);
    const running: Promise<void> = call
      .run()
      .catch((err: unknown) => logger.error({ err, room: redactNumbersIn(ev.room) }, 'simulated call crashed'))
      .finally(() => {
        inFlight.delete(running);
        if (calls.get(ev.room) === call) calls.delete(ev.room);
      });
    inFlight.add(running);
  };
  const onAnswered = (ev: CallAnsweredEvent) => {
    const call = calls.get(ev.room);
    if (call) call.onAnswered(ev);
    else if (!closing) earlyAnswers.set(ev.room, ev);
  };
  const onFailed = (ev: { room: string }) => calls.get(ev.room)?.onNotConnected();
  const onRoomDeleted = (ev: { room: string }) => {
    earlyAnswers.delete(ev.room);
    calls.get(ev.room)?.onNotConnected();
  };
  const onEnded = (ev: CallEndedEvent) => calls.get(ev.room)?.onCallEnded(ev);
  const onDialing = (ev: { room: string; identity: string }) => calls.get(ev.room)?.onCallStatus(ev.identity, 'dialing');
  const onRinging = (ev: { room: string; identity: string }) => calls.get(ev.room)?.onCallStatus(ev.identity, 'ringing');
  const onLeft = (ev: ParticipantLeftEvent) => calls.get(ev.room)?.onParticipantLeft(ev);

  sim.events.on('dispatch_created', onDispatch);
  sim.events.on('call_answered', onAnswered);
  sim.events.on('call_failed', onFailed);
  sim.events.on('room_deleted', onRoomDeleted);
  sim.events.on('call_ended', onEnded);
  sim.events.on('call_dialing', onDialing);
  sim.events.on('call_ringing', onRinging);
  sim.events.on('participant_left', onLeft);

  const idle = async (): Promise<void> => {
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  };

  return {
    idle,
    close() {
      closing ??= (async () => {
        sim.events.off('dispatch_created', onDispatch);
        sim.events.off('call_answered', onAnswered);
        sim.events.off('call_failed', onFailed);
        sim.events.off('room_deleted', onRoomDeleted);
        sim.events.off('call_ended', onEnded);
        sim.events.off('call_dialing', onDialing);
        sim.events.off('call_ringing', onRinging);
        sim.events.off('participant_left', onLeft);
        for (const call of calls.values()) call.shutdown();
        await idle();
        earlyAnswers.clear();
        await book.close();
        await reporter.close();
        await replayer.close();
        await replaySender.close();
        await closeConnection(connection);
      })();
      return closing;
    },
  };
}
