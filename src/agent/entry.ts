import type { JobContext } from '@livekit/agents';
import { voice } from '@livekit/agents';
import type { Room } from '@livekit/rtc-node';
import { Redis } from 'ioredis';
import { loadConfig, requireLiveKit, type DialerConfig } from '../core/config.js';
import { createLiveKitClients } from '../core/livekitClients.js';
import { createLogger, type Logger } from '../core/logger.js';
import { redactPhoneNumber } from '../core/phone.js';
import type { AttemptEndObservation } from '../core/callStore.js';
import { HOUR, SECOND, systemClock } from '../core/time.js';
import { AgentCallBook } from './agentCallBook.js';
import { loadAgentSettings, type AgentSettings } from './agentConfig.js';
import { buildCallAgent } from './callAgent.js';
import { CallServerApi } from './callServerApi.js';
import { SIP_ATTR } from '../core/sipAttributes.js';
import { CallController } from './callController.js';
import { DispatchMetadataError, parseCallPlan, redactNumbersIn, type CallPlan } from './callPlan.js';
import { createSessionModels, type SessionModels } from './models.js';
import { DurableResultReporter, OutcomeSpool, spoolDirFor } from './outcomeSpool.js';
import { CallOutcomeTracker } from './outcomeTracker.js';
import { loadProfiles, resolveCallProfile, type ProfileCatalog } from './profiles.js';
import { followCallee, waitForCaller, waitForLeave, waitForSipAnswer, type LifecycleRoom, type RoomParticipant } from './roomLifecycle.js';
import { agentsWarmTransfer } from './warmTransfer.js';

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
}

/** Creates the call's AgentSession and starts it in the room (the one step that needs real media). */
export type SessionOpener<R> = (request: SessionRequest<R>) => Promise<voice.AgentSession>;

export interface CallRunDeps<R> extends CallJobDeps {
  openSession: SessionOpener<R>;
}

/** Production: an AgentSession on the call's models, started in the job's LiveKit room. */
export async function openRoomSession({ room, agent, models, participantIdentity }: SessionRequest<Room>): Promise<voice.AgentSession> {
  const session = new voice.AgentSession({ llm: models.llm, stt: models.stt, tts: models.tts });
  await session.start({ agent, room, inputOptions: { participantIdentity } });
  return session;
}

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
  detector: Pick<voice.AMD, 'execute' | 'aclose'>,
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
    log.warn({ err: (err as Error).message }, 'answering machine detection failed; the conversation goes on');
  } finally {
    await detector.aclose().catch(() => undefined);
  }
}

/**
 * A call the agent dialed itself was answered, but the room may not show its SIP participant yet (the server's view
 * runs ahead of the room's). If it is not in the room, ask the server: a callee already gone there hung up before
 * the conversation started, and no room event will say so.
 */
async function confirmCalleeStillThere(
  room: CallRoom,
  control: CallServerApi,
  controller: CallController,
  identity: string,
  log: Logger,
): Promise<void> {
  if (room.remoteParticipants.has(identity)) return;
  try {
    const state = await control.participantState(identity);
    if (!state.present || state.callStatus === 'hangup') await controller.calleeLeft('callee hung up before the conversation started');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not check whether the callee is still on the line; the room events will tell');
  }
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

/** runCallJob on any room: the voice session comes from `deps.openSession` (tests start a text-mode one). */
export async function runCall<R extends CallRoom>(ctx: CallJobContext<R>, deps: CallRunDeps<R>): Promise<void> {
  const config = deps.config ?? loadConfig();
  const settings = deps.settings ?? loadAgentSettings();
  const roomName = ctx.job.room?.name ?? ctx.room.name ?? '';

  let plan: CallPlan | undefined;
  let planError: unknown;
  try {
    plan = parseCallPlan(ctx.job.metadata, roomName, ctx.job.room?.metadata);
  } catch (err) {
    planError = err;
  }
  // An inbound room is named after the caller (`call-_<number>_<suffix>`): logs redact it (its call id is a hash).
  const inbound = plan?.direction.kind === 'inbound';
  const redactNames = !plan || inbound;
  const log = (deps.logger ?? createLogger(config.logLevel, 'agent')).child({
    room: redactNames ? redactNumbersIn(roomName) : roomName,
    job: ctx.job.id,
  });
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: REDIS_MAX_RETRIES });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  // Outcomes are spooled before they are sent: Redis being away when the call ends (or this process shutting down
  // meanwhile) leaves them for the worker's main process to replay (src/agent/outcomeSpool.ts).
  const durableReporter = () =>
    new DurableResultReporter({
      connection: redis,
      queuePrefix: config.queuePrefix,
      spool: new OutcomeSpool(spoolDirFor(settings.outcomeSpoolDir, config.queuePrefix)),
      deadlineMs: config.dial.outcomeTimeoutMs,
      logger: log,
    });
  const control = new CallServerApi({ clients: createLiveKitClients(requireLiveKit(config)), roomName, logger: log, redactNames });

  if (!plan) {
    const err = planError instanceof Error ? planError : new Error(String(planError));
    const bad = err instanceof DispatchMetadataError ? err : undefined;
    log.error({ err: err.message }, 'cannot handle this dispatch');
    const reporter = bad?.callId ? durableReporter() : undefined;
    const tracker = new CallOutcomeTracker({ callId: bad?.callId, campaignId: bad?.campaignId ?? 'default', sink: reporter, logger: log });
    await tracker.finish({ outcome: 'failed', reason: err.message });
    await control.hangup('invalid dispatch metadata');
    await reporter?.close();
    redis.disconnect();
    ctx.shutdown('invalid dispatch metadata');
    return;
  }

  const reporter = durableReporter();
  const book = new AgentCallBook(redis, config.queuePrefix, systemClock, config.dial.outcomeTimeoutMs, log);
  const tracker = new CallOutcomeTracker({
    callId: plan.callId,
    campaignId: plan.campaignId,
    attempt: plan.attempt,
    logCallId: redactNames ? redactNumbersIn(plan.callId) : undefined,
    sink: reporter,
    logger: log,
  });
  let controller: CallController | undefined;
  let selfDialing = false;
  let waitingForAnswer = false;

  // Registered before anything can fail or dial: whatever ends this job, a connected call gets one outcome.
  ctx.addShutdownCallback(async () => {
    if (controller && tracker.connected) await controller.abort('the agent shut down during the call');
    else if (selfDialing) {
      const reason = 'the agent shut down while placing the call';
      await tracker.finish({ outcome: 'failed', reason });
      // Deleting the room cancels the call still ringing, so it is not answered into a room nobody serves.
      await control.hangup(reason);
    } else if (tracker.connected || inbound) {
      // Answered (or an inbound caller, whose call is the agent's from the start) but no conversation yet.
      const reason = tracker.connected ? 'the agent shut down during the call' : 'the agent shut down before the caller was connected';
      await tracker.finish({ outcome: 'failed', reason });
      await control.hangup(reason);
    }
    // The consumer's call is still ringing: drop the room so it does not connect to nobody (the consumer retries).
    else if (waitingForAnswer) await control.hangup('the agent shut down before the callee answered');
    await book.close();
    await reporter.close();
    await redis.quit().catch(() => redis.disconnect());
  });

  try {
    await ctx.connect();
    const direction = plan.direction;
    if (direction.kind === 'consumer_dialed') {
      waitingForAnswer = true;
      let leftUnanswered: AttemptEndObservation | undefined;
      const answer = await waitForSipAnswer(ctx.room, direction.participantIdentity, settings.participantWaitMs, (seen) => {
        leftUnanswered = seen;
      });
      if (answer !== 'answered') {
        // Never connected: the consumer saw the SIP failure and reports it; nothing is the agent's to report. What the
        // room showed of the failure goes on the record, for a consumer that takes over if the dialing one died.
        log.info({ answer }, 'the callee did not connect');
        if (leftUnanswered) await book.attemptEnded(plan, leftUnanswered);
        // After a failure (`gone`) the consumer deletes the room. After a timeout, or when the agent lost the room
        // (agents-js disconnects from it before running shutdown callbacks), the call may still be ringing: deleting
        // the room stops the phone from ringing into a room nobody serves (the consumer then sees a platform failure
        // and dials again later). A room that is already gone is fine.
        if (answer === 'timeout') await control.hangup('the callee did not answer in time');
        else if (answer === 'closed') await control.hangup('the agent left the room before the callee answered');
        waitingForAnswer = false;
        ctx.shutdown(answer === 'closed' ? 'room closed before the callee answered' : `callee ${answer}`);
        return;
      }
      waitingForAnswer = false;
      tracker.markConnected();
    }
    let caller: RoomParticipant | undefined;
    if (direction.kind === 'inbound') {
      const joined = await waitForCaller(ctx.room, settings.participantWaitMs);
      if (typeof joined === 'string') {
        const reason =
          joined === 'closed'
            ? 'the caller hung up before the agent answered'
            : `no caller joined the room within ${Math.round(settings.participantWaitMs / SECOND)} s`;
        log.info({ joined }, 'no inbound caller');
        await tracker.finish({ outcome: 'failed', reason });
        await control.hangup(reason);
        ctx.shutdown(reason);
        return;
      }
      caller = joined;
      tracker.markConnected();
      const number = joined.attributes[SIP_ATTR.phoneNumber];
      if (number) tracker.setCaller(number);
      log.info({ caller: number ? redactPhoneNumber(number) : undefined }, 'inbound caller connected');
    }
    // A profile that cannot be used fails the call (reported below), but only once it is the agent's call.
    const catalog = deps.profiles ?? (await profilesFor(settings));
    const profile = resolveCallProfile({
      catalog,
      name: plan.profileName,
      defaultName: settings.defaultProfile,
      override: plan.profileOverride,
      values: plan.values,
      limits: settings.limits,
    });
    if (profile.missingPlaceholders.length > 0) log.warn({ missing: profile.missingPlaceholders }, 'placeholders without a value');
    const callIdentity = { callId: plan.callId, campaignId: plan.campaignId, metadata: {} };
    if (direction.kind === 'inbound') {
      const callerNumber = caller?.attributes[SIP_ATTR.phoneNumber] ?? '';
      await book.connected({ ...callIdentity, phoneNumber: callerNumber }, roomName, profile.limits.maxCallDurationMs);
    }

    const models = createSessionModels(settings.models, profile.voice);
    const callController = new CallController({
      profile,
      tracker,
      serverApi: control,
      behaviour: settings,
      outbound: direction.kind !== 'inbound',
      calleeIdentity: direction.kind === 'inbound' ? caller?.identity : direction.participantIdentity,
      warmTransfer: config.sipOutboundTrunkId
        ? agentsWarmTransfer({ sipTrunkId: config.sipOutboundTrunkId, ringingTimeoutS: settings.transferRingingTimeoutS, logger: log })
        : undefined,
      logger: log,
    });
    const agent = buildCallAgent(callController);
    let detector: voice.AMD | undefined;
    // Outbound: listening starts before a self-dialed call is placed, so the callee's first words are not lost
    // (telephony_amd.ts does the same).
    const session = await deps.openSession({
      room: ctx.room,
      agent,
      models,
      participantIdentity: direction.kind === 'inbound' ? caller?.identity : direction.participantIdentity,
    });

    if (direction.kind === 'inbound') {
      controller = callController;
      callController.attach(session);
      session.generateReply({ instructions: profile.greeting ?? DEFAULT_INBOUND_GREETING });
    } else if (direction.kind === 'consumer_dialed') {
      controller = callController;
      callController.attach(session);
      if (profile.amd) detector = new voice.AMD(session, { llm: models.classifierLlm, participantIdentity: direction.participantIdentity });
    } else {
      const trunkId = config.sipOutboundTrunkId;
      if (profile.amd) detector = new voice.AMD(session, { llm: models.classifierLlm, participantIdentity: direction.participantIdentity });
      selfDialing = true;
      await book.dialing({ ...callIdentity, phoneNumber: direction.phoneNumber }, roomName);
      const dialed = trunkId
        ? await control.dial(direction.phoneNumber, {
            trunkId,
            participantIdentity: direction.participantIdentity,
            ringingTimeoutS: config.dial.ringingTimeoutS,
            maxCallDurationS: Math.ceil(profile.limits.maxCallDurationMs / SECOND) + 60,
          })
        : undefined;
      selfDialing = false;
      if (!dialed?.ok) {
        const decision = dialed?.ok === false ? dialed.decision : { outcome: 'failed' as const, reason: 'SIP_OUTBOUND_TRUNK_ID is not set' };
        await tracker.finish(decision);
        await detector?.aclose().catch(() => undefined);
        await control.hangup(decision.reason);
        ctx.shutdown(decision.reason);
        return;
      }
      controller = callController;
      callController.attach(session);
      await book.connected({ ...callIdentity, phoneNumber: direction.phoneNumber }, roomName, profile.limits.maxCallDurationMs);
    }

    followCallee(ctx.room, callController, session, log, { calleeSeen: direction.kind !== 'self_dial' });
    if (direction.kind === 'self_dial') await confirmCalleeStillThere(ctx.room, control, callController, direction.participantIdentity, log);
    if (detector) void runAnsweringMachineDetection(detector, callController, log);
    const result = await callController.done();
    if (callController.roomKept && callController.callee) {
      await waitForLeave(ctx.room, callController.callee, WARM_TRANSFER_WATCH_MS);
      await control.deleteRoom(roomName);
    }
    ctx.shutdown(result.reason ?? result.outcome);
  } catch (err) {
    log.error({ err }, 'call failed');
    const reason = `agent error: ${(err as Error).message.trim()}`;
    // Reported even when the consumer dialed: the call cannot be served, and a first terminal outcome stands.
    if (controller) await controller.abort(reason);
    else await tracker.finish({ outcome: 'failed', reason });
    await control.hangup(reason);
    ctx.shutdown(reason);
  }
}
