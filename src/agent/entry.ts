/**
 * One call's life, from dispatch to reported outcome (runCall): read the dispatch, connect the callee (one step per
 * direction, src/agent/connectCallee.ts), converse, report once, hang up. The LiveKit worker runs it on agents-js'
 * JobContext and rtc-node's Room (runCallJob); the simulated agent (src/harness) runs the same function on a room
 * built from the simulator's events and a text-mode session.
 */
import type { JobContext } from '@livekit/agents';
import { voice } from '@livekit/agents';
import type { Room } from '@livekit/rtc-node';
import { loadConfig, requireLiveKit, type DialerConfig } from '../core/config.js';
import { createLiveKitClients } from '../core/livekitClients.js';
import { createLogger, type Logger } from '../core/logger.js';
import { createWorkerConnection } from '../core/redisConnection.js';
import { HOUR, systemClock } from '../core/time.js';
import { AgentCallBook } from './agentCallBook.js';
import { loadAgentSettings, type AgentSettings, type ModelSettings } from './agentConfig.js';
import { buildCallAgent } from './callAgent.js';
import { CallController, type DtmfSender } from './callController.js';
import { DispatchMetadataError, parseCallPlan, redactNumbersIn, type CallPlan } from './callPlan.js';
import { CallServerApi } from './callServerApi.js';
import {
  connectCallee,
  type AnsweringMachineDetector,
  type Connected,
  type ConnectContext,
  type Conversation,
  type NotConnected,
} from './connectCallee.js';
import { createSessionModels, type SessionModels } from './models.js';
import { DurableResultReporter, OutcomeSpool, spoolDirFor } from './outcomeSpool.js';
import { CallOutcomeTracker, type ResultSink } from './outcomeTracker.js';
import { loadProfiles, resolveCallProfile, type CallProfile, type ProfileCatalog } from './profiles.js';
import { followCallee, waitForLeave, type LifecycleRoom, type RoomParticipant } from './roomLifecycle.js';
import { agentsWarmTransfer, type WarmTransferPort } from './warmTransfer.js';
import { errorMessage, toError } from '../core/errors.js';

export type { AnsweringMachineDetector } from './connectCallee.js';

/** After a warm transfer the agent stays (silent) until the caller leaves, to delete the room then; at most this long. */
const WARM_TRANSFER_WATCH_MS = 4 * HOUR;
const REDIS_MAX_RETRIES = 3;
const DEFAULT_INBOUND_GREETING = 'Greet the caller warmly, say who you are, and ask how you can help.';

export interface CallJobDeps {
  config?: DialerConfig;
  settings?: AgentSettings;
  profiles?: ProfileCatalog;
  logger?: Logger;
}

/** The room a call runs in, as far as the call's own logic goes (rtc-node's `Room` fits). */
export interface CallRoom extends LifecycleRoom<RoomParticipant> {
  readonly name: string | undefined;
}

/** What runCall uses of agents-js' JobContext (which fits it, with `R` = rtc-node's `Room`). */
export interface CallJobContext<R extends CallRoom> {
  readonly job: {
    readonly id: string;
    readonly metadata: string;
    readonly room?: { readonly name: string; readonly metadata: string };
  };
  readonly room: R;
  connect(): Promise<void>;
  addShutdownCallback(callback: () => Promise<void>): void;
  shutdown(reason?: string): void;
}

/** What the call's voice session is made of and whom it listens to. */
export interface SessionRequest<R> {
  room: R;
  agent: voice.Agent;
  models: SessionModels;
  participantIdentity: string | undefined;
  profile: CallProfile;
  /** An inbound call: the agent greets first (runCall asks the session for a reply on the profile's greeting). */
  inbound: boolean;
  /** The call the session serves (a text-mode opener stops feeding the callee once it is ending). */
  call: Pick<CallController, 'isEnding' | 'roomKept' | 'done'>;
  /**
   * Resolves when the callee is connected and the agent follows the call, i.e. the conversation begins (for a call
   * the agent places, after the answer). Never resolves for a call that does not connect.
   */
  conversing: Promise<void>;
}

/** Creates the call's AgentSession and starts it in the room (the one step that needs real media). */
export type SessionOpener<R> = (request: SessionRequest<R>) => Promise<voice.AgentSession>;

/** The models of a call's session and of AMD's classifier, for the profile's voice. */
export type ModelFactory = (settings: ModelSettings, profileVoice: string | undefined) => SessionModels;

/** AMD on a started session, listening to the callee. */
export type AmdFactory = (session: voice.AgentSession, options: { llm: SessionModels['classifierLlm']; participantIdentity: string | undefined }) => AnsweringMachineDetector;

/** What a warm transfer works with. */
export interface WarmTransferContext {
  serverApi: CallServerApi;
  tracker: CallOutcomeTracker;
  sipTrunkId: string;
  ringingTimeoutS: number;
  logger: Logger;
}

/** Where a call reports: its outcome (spooled before it is sent) and the record of a call the agent connected itself. */
export interface CallReporting {
  reporter: ResultSink;
  book: AgentCallBook;
}

/**
 * runCall's dependencies. Only `openSession` is required; the rest default to what the LiveKit worker uses. The
 * simulated agent (src/harness) replaces the parts that need real media or a job process of their own.
 */
export interface CallRunDeps<R> extends CallJobDeps {
  openSession: SessionOpener<R>;
  /** Default: the OpenAI plugin's models (createSessionModels). */
  createModels?: ModelFactory;
  /** Default: agents-js' voice.AMD on the session. */
  detectAnsweringMachine?: AmdFactory;
  /** Default: agents-js' WarmTransferTask in the job's room (needs SIP_OUTBOUND_TRUNK_ID, as every warm transfer does). */
  warmTransfer?: (call: WarmTransferContext) => WarmTransferPort;
  /** Default: none, so the agent uses agents-js' send_dtmf_events, which publishes DTMF in the job's room. */
  sendDtmf?: DtmfSender;
  /** Default: a Redis connection of the job's own, closed with the job (agents-js runs each job in its own process). */
  reporting?: CallReporting;
}

/** Production: an AgentSession on the call's models, started in the job's LiveKit room. */
export async function openRoomSession({ room, agent, models, participantIdentity }: SessionRequest<Room>): Promise<voice.AgentSession> {
  const session = new voice.AgentSession({ llm: models.llm, stt: models.stt, tts: models.tts });
  await session.start({ agent, room, inputOptions: { participantIdentity } });
  return session;
}

const roomAmd: AmdFactory = (session, options) => new voice.AMD(session, options);
const roomWarmTransfer = (call: WarmTransferContext): WarmTransferPort =>
  agentsWarmTransfer({ sipTrunkId: call.sipTrunkId, ringingTimeoutS: call.ringingTimeoutS, logger: call.logger });

let cachedProfiles: { file: string; catalog: Promise<ProfileCatalog> } | undefined;

/** Profiles are read once per process (a job process may run many calls). */
function profilesFor(settings: AgentSettings): Promise<ProfileCatalog> {
  if (cachedProfiles?.file !== settings.profilesFile) {
    cachedProfiles = { file: settings.profilesFile, catalog: loadProfiles(settings.profilesFile) };
  }
  return cachedProfiles.catalog;
}

/** voice.AMD on the greeting (profiles with `amd: true`): a voicemail greeting leaves the message and hangs up. */
export async function runAnsweringMachineDetection(
  detector: AnsweringMachineDetector,
  controller: Pick<CallController, 'leaveVoicemail' | 'end'>,
  log: Logger,
): Promise<void> {
  try {
    const prediction = await detector.execute();
    log.info({ category: prediction.category, reason: prediction.reason }, 'answering machine detection');
    if (prediction.category === voice.AMDCategory.MACHINE_VM) {
      await controller.leaveVoicemail('amd');
    } else if (prediction.category === voice.AMDCategory.MACHINE_UNAVAILABLE) {
      await controller.end({ outcome: 'voicemail', reason: 'answering machine: mailbox unavailable, no message left' }, { hangup: true });
    }
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'answering machine detection failed; the conversation goes on');
  } finally {
    await detector.aclose().catch(() => undefined);
  }
}

/**
 * A call the agent dialed itself was answered, but the room may not show its SIP participant yet (the server's view
 * runs ahead of the room's). If it is not in the room, ask the server: a callee already gone there hung up before
 * the conversation started, and no room event will say so.
 */
async function confirmCalleeStillThere(room: CallRoom, serverApi: CallServerApi, controller: CallController, log: Logger): Promise<void> {
  const identity = controller.callee;
  if (identity === undefined || room.remoteParticipants.has(identity)) return;
  try {
    const state = await serverApi.participantState(identity);
    if (!state.present || state.callStatus === 'hangup') await controller.calleeLeft('callee hung up before the conversation started');
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'could not check whether the callee is still on the line; the room events will tell');
  }
}

/** A job's own Redis connection, outcome reporter and call book; `close` ends all three. */
function openJobReporting(config: DialerConfig, settings: AgentSettings, log: Logger): CallReporting & { close(): Promise<void> } {
  // through the one connection factory: REDIS_URL or Sentinel alike; an outage is logged once, when lost and restored
  const redis = createWorkerConnection(config.redis, { maxRetriesPerRequest: REDIS_MAX_RETRIES }, { name: 'agent-job', logger: log });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis command error'));
  // Outcomes are spooled before they are sent: Redis being away when the call ends (or this process shutting down
  // meanwhile) leaves them for the worker's main process to replay (src/agent/outcomeSpool.ts).
  const reporter = new DurableResultReporter({
    connection: redis,
    queuePrefix: config.queuePrefix,
    spool: new OutcomeSpool(spoolDirFor(settings.outcomeSpoolDir, config.queuePrefix)),
    deadlineMs: config.dial.outcomeTimeoutMs,
    logger: log,
  });
  const book = new AgentCallBook(redis, config.queuePrefix, systemClock, config.dial.outcomeTimeoutMs, log);
  return {
    reporter,
    book,
    async close() {
      await book.close();
      await reporter.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * One dispatched call in a LiveKit room, from dispatch to reported outcome. Outbound: wait for the consumer's SIP
 * participant (or dial it), let the callee speak first; inbound: greet. Every ending reports once; a call that never
 * connected while the consumer dialed is the consumer's to report. Inbound calls are reported under
 * inboundCallId(room) (campaign `inbound` unless the dispatch or room metadata names one), whatever ends them.
 */
export async function runCallJob(ctx: JobContext, deps: CallJobDeps = {}): Promise<void> {
  await runCall(ctx, { ...deps, openSession: openRoomSession });
}

/** The job's dispatch metadata, read once; a failure is a value (DispatchMetadataError, or whatever else it threw). */
function readPlan(job: CallJobContext<CallRoom>['job'], roomName: string): { ok: true; plan: CallPlan } | { ok: false; error: Error } {
  try {
    return { ok: true, plan: parseCallPlan(job.metadata, roomName, job.room?.metadata) };
  } catch (err) {
    return { ok: false, error: toError(err) };
  }
}

/**
 * runCallJob on any room: the voice session comes from `deps.openSession` (the harness and the tests start a
 * text-mode one). Reads the dispatch, connects the callee the way its direction says, converses, and ends the job.
 */
export async function runCall<R extends CallRoom>(ctx: CallJobContext<R>, deps: CallRunDeps<R>): Promise<void> {
  const config = deps.config ?? loadConfig();
  const settings = deps.settings ?? loadAgentSettings();
  const roomName = ctx.job.room?.name ?? ctx.room.name ?? '';
  const read = readPlan(ctx.job, roomName);
  // An inbound room is named after the caller (`call-_<number>_<suffix>`): logs redact it (its call id is a hash).
  const inbound = read.ok && read.plan.direction.kind === 'inbound';
  const redactNames = !read.ok || inbound;
  const log = (deps.logger ?? createLogger(config.logLevel, 'agent')).child({
    room: redactNames ? redactNumbersIn(roomName) : roomName,
    job: ctx.job.id,
  });
  const serverApi = new CallServerApi({ clients: createLiveKitClients(requireLiveKit(config)), roomName, logger: log, redactNames });

  if (!read.ok) {
    await refuseDispatch(read.error, { config, settings, deps, serverApi, log });
    ctx.shutdown('invalid dispatch metadata');
    return;
  }
  const plan = read.plan;
  let own: (CallReporting & { close(): Promise<void> }) | undefined;
  let reporting = deps.reporting;
  if (!reporting) {
    own = openJobReporting(config, settings, log);
    reporting = own;
  }
  const { reporter, book } = reporting;
  const tracker = new CallOutcomeTracker({
    callId: plan.callId,
    campaignId: plan.campaignId,
    attempt: plan.attempt,
    logCallId: redactNames ? redactNumbersIn(plan.callId) : undefined,
    sink: reporter,
    logger: log,
  });
  let controller: CallController | undefined;
  let beginConversation: () => void = () => undefined;
  const conversing = new Promise<void>((resolve) => {
    beginConversation = resolve;
  });

  const c: ConnectContext = {
    room: ctx.room,
    roomName,
    plan,
    config,
    settings,
    tracker,
    book,
    serverApi,
    log,
    phase: 'connecting',
    open: (calleeIdentity) => openConversation(ctx.room, calleeIdentity),
  };

  /** Resolves the profile (a bad one fails the call, once it is the agent's) and opens the session, listening. */
  async function openConversation(room: R, calleeIdentity: string): Promise<Conversation> {
    const profile = resolveCallProfile({
      catalog: deps.profiles ?? (await profilesFor(settings)),
      name: plan.profileName,
      defaultName: settings.defaultProfile,
      override: plan.profileOverride,
      values: plan.values,
      limits: settings.limits,
    });
    if (profile.missingPlaceholders.length > 0) log.warn({ missing: profile.missingPlaceholders }, 'placeholders without a value');
    if (inbound) {
      const call = { callId: plan.callId, campaignId: plan.campaignId, metadata: {}, phoneNumber: tracker.caller ?? '' };
      await book.connected(call, roomName, profile.limits.maxCallDurationMs);
    }
    const models = (deps.createModels ?? createSessionModels)(settings.models, profile.voice);
    const sipTrunkId = config.sipOutboundTrunkId;
    const callController = new CallController({
      profile,
      tracker,
      serverApi,
      behaviour: settings,
      outbound: !inbound,
      calleeIdentity,
      warmTransfer: sipTrunkId
        ? (deps.warmTransfer ?? roomWarmTransfer)({ serverApi, tracker, sipTrunkId, ringingTimeoutS: settings.transferRingingTimeoutS, logger: log })
        : undefined,
      sendDtmf: deps.sendDtmf,
      logger: log,
    });
    const session = await deps.openSession({
      room,
      agent: buildCallAgent(callController),
      models,
      participantIdentity: calleeIdentity,
      profile,
      inbound,
      call: callController,
      conversing,
    });
    const detector =
      profile.amd && !inbound
        ? (deps.detectAnsweringMachine ?? roomAmd)(session, { llm: models.classifierLlm, participantIdentity: calleeIdentity })
        : undefined;
    return { controller: callController, session, profile, detector };
  }

  /** The conversation, from the connected callee to its one outcome; returns why the job ends. */
  async function converse(connected: Connected): Promise<string> {
    const { session, profile, detector } = connected.conversation;
    const callController = connected.conversation.controller;
    controller = callController;
    callController.attach(session);
    if (inbound) session.generateReply({ instructions: profile.greeting ?? DEFAULT_INBOUND_GREETING });
    followCallee(ctx.room, callController, session, log, { calleeSeen: connected.calleeSeen });
    if (!connected.calleeSeen) await confirmCalleeStillThere(ctx.room, serverApi, callController, log);
    beginConversation();
    if (detector) void runAnsweringMachineDetection(detector, callController, log);
    const result = await callController.done();
    if (callController.roomKept && callController.callee) {
      await waitForLeave(ctx.room, callController.callee, WARM_TRANSFER_WATCH_MS);
      await serverApi.deleteRoom(roomName);
    }
    return result.reason ?? result.outcome;
  }

  /** A call that never connected: its observation, outcome and hang-up, each as the connect step decided. */
  async function endUnconnected(failure: NotConnected): Promise<string> {
    if (failure.observed) await book.attemptEnded(plan, failure.observed);
    if (failure.decision) await tracker.finish(failure.decision);
    await failure.detector?.aclose().catch(() => undefined);
    if (failure.hangup) await serverApi.hangup(failure.hangup);
    return failure.shutdownReason;
  }

  // Registered before anything can fail or dial: whatever ends this job, a connected call gets one outcome.
  ctx.addShutdownCallback(async () => {
    if (controller && tracker.connected) await controller.abort('the agent shut down during the call');
    else if (c.phase === 'dialing') {
      const reason = 'the agent shut down while placing the call';
      await tracker.finish({ outcome: 'failed', reason });
      // Deleting the room cancels the call still ringing, so it is not answered into a room nobody serves.
      await serverApi.hangup(reason);
    } else if (tracker.connected || inbound) {
      // Answered (or an inbound caller, whose call is the agent's from the start) but no conversation yet.
      const reason = tracker.connected ? 'the agent shut down during the call' : 'the agent shut down before the caller was connected';
      await tracker.finish({ outcome: 'failed', reason });
      await serverApi.hangup(reason);
    }
    // The consumer's call is still ringing: drop the room so it does not connect to nobody (the consumer retries).
    else if (c.phase === 'waiting_for_answer') await serverApi.hangup('the agent shut down before the callee answered');
    await own?.close();
  });

  try {
    await ctx.connect();
    const connection = await connectCallee(c);
    ctx.shutdown(connection.connected ? await converse(connection) : await endUnconnected(connection));
  } catch (err) {
    log.error({ err }, 'call failed');
    const reason = `agent error: ${errorMessage(err).trim()}`;
    // Reported even when the consumer dialed: the call cannot be served, and a first terminal outcome stands.
    if (controller) await controller.abort(reason);
    else await tracker.finish({ outcome: 'failed', reason });
    await serverApi.hangup(reason);
    ctx.shutdown(reason);
  }
}

/**
 * Dispatch metadata the agent cannot use: one `failed` outcome when it still names a call id (else there is nothing to
 * report to), and the room is deleted.
 */
async function refuseDispatch(
  err: Error,
  call: { config: DialerConfig; settings: AgentSettings; deps: CallJobDeps & { reporting?: CallReporting }; serverApi: CallServerApi; log: Logger },
): Promise<void> {
  const bad = err instanceof DispatchMetadataError ? err : undefined;
  call.log.error({ err: err.message }, 'cannot handle this dispatch');
  const own = bad?.callId && !call.deps.reporting ? openJobReporting(call.config, call.settings, call.log) : undefined;
  const sink = bad?.callId ? (call.deps.reporting ?? own)?.reporter : undefined;
  const tracker = new CallOutcomeTracker({ callId: bad?.callId, campaignId: bad?.campaignId ?? 'default', sink, logger: call.log });
  await tracker.finish({ outcome: 'failed', reason: err.message });
  await call.serverApi.hangup('invalid dispatch metadata');
  await own?.close();
}
