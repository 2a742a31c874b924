/**
 * The simulated agent: the agent's own call lifecycle (runCall, src/agent/entry.ts) run against src/sim. For each
 * dispatch to its agent name it builds what agents-js would hand the job (a room that follows the simulator's
 * events, a job context) and the parts that need real media (a text-mode session whose callee speaks from the
 * simulator's scenario, src/harness/scriptedCallee.ts), then runs runCall: the same connect steps, conversation,
 * LiveKit API calls (against the simulator) and outcomes (to `call-results`) as the LiveKit worker.
 */
import { callShardsOf } from '../core/callShards.js';
import { initializeLogger, loggerOptions } from '@livekit/agents';
import { pino } from 'pino';
import {
  DEFAULT_OUTCOME_SPOOL_DIR,
  DEFAULT_PROFILES_FILE,
  DEFAULT_PROFILE_NAME,
  DEFAULT_TRANSFER_RINGING_TIMEOUT_S,
  loadAgentSettings,
  type AgentSettings,
  type CallLimits,
} from '../agent/agentConfig.js';
import { AgentCallBook } from '../agent/agentCallBook.js';
import type { CallBehaviour } from '../agent/callController.js';
import { parseCallPlan, redactNumbersIn } from '../agent/callPlan.js';
import { runCall, type CallReporting, type WarmTransferContext } from '../agent/entry.js';
import { DurableResultReporter, OutcomeSpool, spoolDirFor, startSpoolReplayer } from '../agent/outcomeSpool.js';
import { loadProfiles, type ProfileCatalog } from '../agent/profiles.js';
import { apiWarmTransfer } from '../agent/warmTransfer.js';
import { DEFAULT_CALL_OUTCOME_TIMEOUT_S, loadConfig, type DialerConfig } from '../core/config.js';
import { createLiveKitClients } from '../core/livekitClients.js';
import type { Logger } from '../core/logger.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { ResultReporter } from '../core/reportResult.js';
import type { RedisTarget } from '../core/redisTarget.js';
import { SECOND, systemClock } from '../core/time.js';
import type { DispatchCreatedEvent, SimEvents } from '../sim/index.js';
import { ScriptedCallee } from './scriptedCallee.js';
import { connectSimAgentWorker, type AssignedSimJob, type SimAgentWorker } from './simAgentWorker.js';
import { SimJob } from './simJob.js';
import { SimRoom } from './simRoom.js';
import { errorMessage } from '../core/errors.js';

/** Grace beyond a call's longest possible life before the harness ends its job as not ended in time. */
const END_GRACE_MS = 10 * SECOND;

function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The parts of a running `src/sim` LiveKitSim the simulated agent uses. */
export interface SimLike {
  url: string;
  apiKey: string;
  apiSecret: string;
  events: SimEvents;
  /** Trunk for calls the agent places itself (self-dial, warm-transfer operators). */
  outboundTrunkId?: string;
  /**
   * Where the agent's worker socket (`/agent`) is opened, when not at `url`: the chaos test's API proxy relays no
   * WebSocket, so its agent host registers with the simulator itself.
   */
  agentUrl?: string;
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
  /** Where Redis is when it is not one node at `redisUrl` (Sentinel, Cluster): the agent's outcomes go there. */
  redis?: RedisTarget;
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

/** Whether a dispatch is an inbound call (no phone number): its room's metadata may name the campaign. */
function isInboundDispatch(metadata: string, room: string): boolean {
  try {
    return parseCallPlan(metadata, room).direction.kind === 'inbound';
  } catch {
    return false; // runCall reports the bad metadata
  }
}

/**
 * Runs the agent's call lifecycle against `src/sim`: for each dispatch to `agentName`, runCall waits for the
 * consumer's call to be answered (or places it, for a dispatch with only a phone number, or greets an inbound caller),
 * then plays the conversation in agents-js text mode with a scripted model built from the callee's script, making
 * the real LiveKit API calls (hang-up, transfers, dialing) against the simulator and reporting each call's one outcome
 * to `call-results`.
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
  const { sim } = options;
  const outcomeTimeoutMs = options.outcomeTimeoutMs ?? DEFAULT_CALL_OUTCOME_TIMEOUT_S * SECOND;
  const outcomeSpoolDir = options.outcomeSpoolDir ?? DEFAULT_OUTCOME_SPOOL_DIR;
  // The settings the worker would read from its environment, pointed at the simulator.
  const base = loadConfig({
    REDIS_URL: options.redisUrl,
    QUEUE_PREFIX: options.queuePrefix,
    // the host's call shards for this prefix (its own configuration set them): the agent finds records where they are
    CALL_SHARDS: String(callShardsOf(options.queuePrefix).count),
    AGENT_NAME: options.agentName,
    LIVEKIT_URL: sim.url,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    LOG_LEVEL: 'silent',
  });
  const config: DialerConfig = { ...base, dial: { ...base.dial, ringingTimeoutS: timing.ringingTimeoutS, outcomeTimeoutMs } };
  const settings: AgentSettings = {
    ...loadAgentSettings({}),
    profilesFile: options.profilesFile ?? DEFAULT_PROFILES_FILE,
    defaultProfile: options.defaultProfile ?? DEFAULT_PROFILE_NAME,
    participantWaitMs: timing.answerWaitMs,
    limits: timing.limits,
    ...timing.behaviour,
    outcomeSpoolDir,
  };
  // Longest a call can take: the answer, the ringing of a call the agent places, the call itself.
  const jobBudgetMs = timing.answerWaitMs + timing.ringingTimeoutS * SECOND + timing.limits.maxCallDurationMs + END_GRACE_MS;

  const connection = createProducerConnection(options.redis ?? options.redisUrl);
  connection.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  try {
    await waitUntilReady(connection);
  } catch (err) {
    connection.disconnect();
    throw err;
  }
  // As the real worker: outcomes are spooled before they are sent, retried while Redis is away, and whatever an
  // earlier (closed or crashed) agent left in the spool is replayed. One connection serves every call.
  const spool = new OutcomeSpool(spoolDirFor(outcomeSpoolDir, options.queuePrefix));
  const reporter = new DurableResultReporter({ connection, queuePrefix: options.queuePrefix, spool, deadlineMs: outcomeTimeoutMs, logger });
  const replaySender = new ResultReporter(connection, options.queuePrefix, logger);
  const replayer = startSpoolReplayer({ spool, sender: replaySender, logger });
  const book = new AgentCallBook(connection, options.queuePrefix, systemClock, outcomeTimeoutMs, logger);
  const reporting: CallReporting = { reporter, book };
  const clients = createLiveKitClients({ url: sim.url, apiKey: sim.apiKey, apiSecret: sim.apiSecret });

  let profiles: ProfileCatalog | undefined = options.profiles;
  const loadCatalog = async (): Promise<ProfileCatalog> => {
    profiles ??= await loadProfiles(settings.profilesFile);
    return profiles;
  };

  const roomMetadata = async (room: string): Promise<string> => {
    try {
      const [info] = await clients.rooms.listRooms([room]);
      return info?.metadata ?? '';
    } catch (err) {
      logger.warn({ err: errorMessage(err) }, 'could not read the room metadata');
      return '';
    }
  };

  /** A dispatch's job as agents-js would hand it over, prepared when the dispatch is made. */
  interface Prepared {
    ev: DispatchCreatedEvent;
    job: SimJob;
    callee: ScriptedCallee;
    log: Logger;
  }
  /** The job of each room with a call in progress. */
  const jobs = new Map<string, SimJob>();
  const inFlight = new Set<Promise<void>>();
  /** Calls the agent still serves (a warm-transferred call, which the agent only watches, is not one). */
  const serving = new Set<Promise<void>>();
  let closing: Promise<void> | undefined;

  /** One dispatched call: the room and job agents-js would hand the worker, and runCall on them. */
  const runJob = async (ev: DispatchCreatedEvent, job: SimJob, callee: ScriptedCallee, log: Logger): Promise<void> => {
    const budget = setTimeout(() => job.requestClose('the simulated call did not end in time'), jobBudgetMs);
    budget.unref();
    try {
      if (isInboundDispatch(ev.metadata, ev.room)) job.setRoomMetadata(await roomMetadata(ev.room));
      const catalog = await loadCatalog();
      await job.run(
        runCall(job, {
          config,
          settings,
          profiles: catalog,
          logger,
          reporting,
          openSession: callee.openSession,
          createModels: callee.models,
          detectAnsweringMachine: callee.detectAnsweringMachine,
          sendDtmf: callee.sendDtmf,
          warmTransfer: (call: WarmTransferContext) =>
            apiWarmTransfer({
              serverApi: call.serverApi,
              sipTrunkId: call.sipTrunkId,
              ringingTimeoutS: call.ringingTimeoutS,
              logger: call.logger,
              onBriefing: (briefing) => call.tracker.addTranscript('system', `operator briefing: ${briefing}`),
            }),
        }),
        log,
      );
    } finally {
      clearTimeout(budget);
      callee.close();
      job.room.close();
    }
  };

  /**
   * Dispatches to this agent name, followed from their creation (every call into the room comes after it) until the
   * simulator assigns their job to this worker, by dispatch id. A dispatch no worker takes (none registered, every one
   * full) never runs: its room has no agent, as on a real server.
   */
  const watching = new Map<string, Prepared>();
  /** Jobs assigned before their dispatch's event arrived (events relayed from another process can lag), by dispatch id. */
  const assignedEarly = new Map<string, AssignedSimJob>();

  const stopWatching = (dispatchId: string): void => {
    const prepared = watching.get(dispatchId);
    watching.delete(dispatchId);
    prepared?.callee.close();
    prepared?.job.room.close();
  };

  /** The job of a watched dispatch was assigned to this worker: runCall on it, in the room followed since the dispatch. */
  const startJob = ({ ev, job, callee, log }: Prepared, assigned: AssignedSimJob) => {
    job.assign(assigned.id);
    jobs.set(ev.room, job);
    const running: Promise<void> = runJob(ev, job, callee, log)
      .catch((err: unknown) => logger.error({ err, room: redactNumbersIn(ev.room) }, 'simulated call crashed'))
      .finally(() => {
        inFlight.delete(running);
        jobs.delete(ev.room);
        worker.jobEnded(assigned.id); // the agent leaves the room
      });
    inFlight.add(running);
    const served: Promise<void> = Promise.race([running, callee.handedOver]).finally(() => serving.delete(served));
    serving.add(served);
  };

  const onDispatch = (ev: DispatchCreatedEvent) => {
    if (closing || ev.agentName !== options.agentName || jobs.has(ev.room) || watching.has(ev.dispatchId)) return;
    // The room and the callee follow the simulator from the dispatch on: every call into the room comes after.
    const log = logger.child({ room: redactNumbersIn(ev.room) });
    const job = new SimJob(ev.dispatchId, ev.metadata, new SimRoom(ev.room, sim.events, (identity) => worker.ownsIdentity(identity)));
    const prepared: Prepared = { ev, job, callee: new ScriptedCallee(ev.room, sim.events, job, timing.turnTimeoutMs, log), log };
    const early = assignedEarly.get(ev.dispatchId);
    assignedEarly.delete(ev.dispatchId);
    if (early) startJob(prepared, early);
    else watching.set(ev.dispatchId, prepared);
  };
  const onAssigned = (assigned: AssignedSimJob) => {
    const watched = watching.get(assigned.dispatchId);
    watching.delete(assigned.dispatchId);
    if (watched && !closing) startJob(watched, assigned);
    else if (!closing) assignedEarly.set(assigned.dispatchId, assigned);
    else worker.jobEnded(assigned.id);
  };
  /** A watched dispatch that will not run here: its room or dispatch is gone, or its job went elsewhere or nowhere. */
  const onRoomDeleted = (ev: { room: string }) => {
    for (const [dispatchId, watched] of watching) if (watched.ev.room === ev.room) stopWatching(dispatchId);
  };
  const onDispatchGone = (ev: { dispatchId: string }) => stopWatching(ev.dispatchId);
  const onJobElsewhere = (ev: { dispatchId: string; workerId: string }) => {
    if (ev.workerId !== worker.id) stopWatching(ev.dispatchId);
  };

  // The harness is an agent worker of the simulator: it serves the dispatches the simulator assigns it (one call per
  // room: a second dispatch into a room it serves already is declined, as before).
  let worker: SimAgentWorker;
  try {
    worker = await connectSimAgentWorker({
      url: sim.agentUrl ?? sim.url,
      apiKey: sim.apiKey,
      apiSecret: sim.apiSecret,
      agentName: options.agentName,
      accept: (offer) => !closing && !jobs.has(offer.room),
      onJob: onAssigned,
    });
  } catch (err) {
    await book.close();
    await reporter.close();
    await replayer.close();
    await replaySender.close();
    await closeConnection(connection);
    throw err;
  }
  sim.events.on('dispatch_created', onDispatch);
  sim.events.on('room_deleted', onRoomDeleted);
  sim.events.on('dispatch_deleted', onDispatchGone);
  sim.events.on('job_not_assigned', onDispatchGone);
  sim.events.on('job_assigned', onJobElsewhere);

  /** Every call the agent serves has ended (warm-transferred calls it only watches go on). */
  const idle = async (): Promise<void> => {
    while (serving.size > 0) await Promise.allSettled([...serving]);
  };

  return {
    idle,
    close() {
      closing ??= (async () => {
        sim.events.off('dispatch_created', onDispatch);
        sim.events.off('room_deleted', onRoomDeleted);
        sim.events.off('dispatch_deleted', onDispatchGone);
        sim.events.off('job_not_assigned', onDispatchGone);
        sim.events.off('job_assigned', onJobElsewhere);
        worker.setFull(true); // no new jobs while the calls in progress end
        for (const dispatchId of [...watching.keys()]) stopWatching(dispatchId);
        for (const job of jobs.values()) job.requestClose('the simulated agent shut down');
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        await worker.close();
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
