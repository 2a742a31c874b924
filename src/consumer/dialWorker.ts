import { CANCEL_REASON } from '../producer/cancelCalls.js';
import { setMaxListeners } from 'node:events';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { CallQueues } from '../core/callQueues.js';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore } from '../core/callStore.js';
import { loadConfig, requireDialSettings, requireOutboundTrunk, type DialerConfig } from '../core/config.js';
import { createLiveKitClients, type LiveKitClients } from '../core/livekitClients.js';
import { createLogger, type Logger } from '../core/logger.js';
import type { CallResult } from '../core/outcomes.js';
import { CALLS_QUEUE, type CallJob } from '../core/queues.js';
import { parseCallJob } from './parseCallJob.js';
import { closeConnection, createWorkerConnection } from '../core/redisConnection.js';
import { ResultReporter } from '../core/reportResult.js';
import type { DialerMetrics } from '../core/metrics.js';
import { SECOND, systemClock, type Clock } from '../core/time.js';
import { dialAttempt, type DialAttemptHooks, type DialAttemptResult, type DialDeps } from './dialAttempt.js';
import { errorMessage } from '../core/errors.js';
import { requireAgentAfterAnswer, type AgentCheckDeps } from './agentPresence.js';
import {
  checkCampaignGate,
  dialingLeaseTtlMs,
  checkDialGates,
  keepLeaseAlive,
  type GateDecision,
  loadProfileCatalog,
  waitForActiveCallLease,
  type ActiveCallGateDeps,
  type DialGateDeps,
} from './dialGates.js';
import { ActiveCallLeases, ANSWERED_LEASE_MARGIN_MS } from '../core/activeCallLeases.js';
import { CampaignRate } from '../campaigns/campaignRate.js';
import { HeldCalls } from '../core/heldCalls.js';
import { publishOutboundCap } from '../core/outboundCap.js';
import { effectiveCps, type Campaign } from '../campaigns/campaignSchema.js';
import { CampaignStore } from '../campaigns/campaignStore.js';
import type { RetryDelays } from '../core/config.js';
import { CallEndedError, MalformedCallJobError, RetryDialError } from './dialErrors.js';
import { DialRateLimiter } from './dialRateLimiter.js';
import { retryDelayMs } from './retryPolicy.js';
import { PlatformBackoff } from './platformBackoff.js';
import { OutcomeWatchdog } from '../core/outcomeWatchdogQueue.js';
import { answeredGateStore, GateReader } from './gateReads.js';

/** A job's data as found on `calls`: ours (CallJob) or another service's; parseCallJob validates it. */
type PushedJobData = Record<string, unknown>;

/** Where a job pushed without BullMQ `attempts` keeps its attempt count (BullMQ's counter stays at 0 for it). */
const FOREIGN_ATTEMPTS_FIELD = 'dialAttemptsMade';

function foreignAttemptsMade(data: unknown): number {
  const made = (data as Record<string, unknown> | null)?.[FOREIGN_ATTEMPTS_FIELD];
  return typeof made === 'number' && Number.isInteger(made) && made >= 0 ? made : 0;
}

/** A job this consumer may no longer own goes back to wait this long, for a fresh run to decide (no attempt spent). */
const REQUEUE_DELAY_MS = SECOND;

/**
 * The moment past which a call that passed its gates is still not dialed: its campaign's `ends_at` or its own expiry,
 * whichever comes first (dialAttempt checks it in the claim, since the wait for a CPS slot can outlast either).
 */
function notAfter(call: CallJob, campaign: Campaign | undefined): { notAfterMs?: number } {
  const ends = [campaign?.ends_at ? Date.parse(campaign.ends_at) : undefined, call.expiresAt].filter((t): t is number => t !== undefined);
  return ends.length > 0 ? { notAfterMs: Math.min(...ends) } : {};
}

/**
 * What a retry due at `retryAt` (epoch ms) would come after, so that it could not ring: the call's expiry or its
 * campaign's end (the gates would end it `expired` when it runs). Undefined when it comes in time.
 */
function retryPastEnd(call: CallJob, campaign: Campaign | undefined, retryAt: number): string | undefined {
  if (call.expiresAt !== undefined && retryAt > call.expiresAt) return `its expiry at ${new Date(call.expiresAt).toISOString()}`;
  const endsAt = campaign?.ends_at ? Date.parse(campaign.ends_at) : undefined;
  if (campaign && endsAt !== undefined && retryAt > endsAt) return `the end of campaign ${campaign.id} at ${new Date(endsAt).toISOString()}`;
  return undefined;
}

/** A call held back by a full cap on calls in progress goes back to wait this long before it asks again. */
const ACTIVE_CAP_RECHECK_MS = SECOND;

/** BullMQ's stalled-job check runs at half the lock duration, but not more often than this. */
const MIN_STALLED_INTERVAL_MS = 500;

/**
 * A stalled call may be picked up this many times before BullMQ fails it for good. Lock lapses count too (a Redis
 * freeze or restart, an event-loop stall), not only consumers that died, and a re-run of a dial job is safe (it
 * follows what the record says), so the bound is there only against a job that kills every consumer taking it.
 */
export const MAX_STALLED_COUNT = 10;

export interface DialWorkerOptions {
  /** Defaults to the environment's settings (loadConfig). */
  config?: DialerConfig;
  /** Defaults to clients built from LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET. */
  livekit?: LiveKitClients;
  logger?: Logger;
  clock?: Clock;
  /** Source of jitter for retry delays (tests pass a fixed one). */
  random?: () => number;
  /** Where attempts, dial times, ringing calls and held calls are counted. */
  metrics?: DialerMetrics;
  /**
   * How long a call held back by a full cap on calls in progress waits before it asks again, and so how soon an edited
   * cap holds: ACTIVE_CAP_RECHECK_MS (a second) by default. Tests shorten it to run the same sequence faster.
   */
  capRecheckMs?: number;
}

/** What a dial job returns when it completes. */
export type DialJobResult =
  | { status: 'answered'; room: string; recovered: boolean }
  | { status: 'already_ended' }
  | { status: 'expired' }
  | { status: 'skipped' }
  | { status: 'canceled' }
  | { status: 'failed' }
  /** Found on another shard's queue than its campaign's: moved there (same job id), dialed from there. */
  | { status: 'forwarded'; shard: string };

/** The metric label of an attempt's end; undefined when no call was placed (draining, lost, or the call had ended). */
function attemptResultLabel(result: DialAttemptResult): string | undefined {
  switch (result.status) {
    case 'answered':
      return 'answered';
    case 'unreachable':
      return 'platform_error';
    case 'failed':
      return result.end.kind === 'platform' ? 'platform_error' : result.end.outcome;
    default:
      return undefined;
  }
}

/**
 * Puts the job back to wait `delayMs` without spending an attempt (the phone did not ring). BullMQ schedules on the
 * wall clock, whatever clock decided the wait.
 */
async function waitWithoutAttempt(job: Job, token: string | undefined, delayMs: number): Promise<never> {
  if (!token) throw new Error('BullMQ gave no lock token: the call cannot be put back to wait');
  await job.moveToDelayed(Date.now() + delayMs, token);
  throw new DelayedError();
}

export interface DialWorkerHandle {
  /** Shard 0's worker (QUEUE_PREFIX's own `calls`; the only one with the default CALL_SHARDS). */
  worker: Worker<PushedJobData, DialJobResult>;
  /** One worker per call shard (callShards.ts), shard 0 first. */
  workers: ReadonlyArray<Worker<PushedJobData, DialJobResult>>;
  /** First call drains (ringing calls finish); `force` stops at once. Idempotent per mode. */
  close(force?: boolean): Promise<void>;
}

/**
 * Starts dial workers on `calls`: DIAL_CONCURRENCY calls ringing at once in this process, DIAL_CPS starts per
 * rolling second across all processes. This is where retries happen: BullMQ retries with the per-outcome
 * backoff below, final outcomes are reported to `call-results`, platform trouble backs the whole queue off (no dial
 * goes out from any process while it runs) without spending the call's attempt, up to DIAL_MAX_PLATFORM_ERRORS.
 */
export async function startDialWorker(options: DialWorkerOptions = {}): Promise<DialWorkerHandle> {
  const config = options.config ?? loadConfig(process.env);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const metrics = options.metrics;
  const capRecheckMs = options.capRecheckMs ?? ACTIVE_CAP_RECHECK_MS;
  const logger = (options.logger ?? createLogger(config.logLevel)).child({ component: 'dial-worker' });
  // The agent's profiles (AGENT_PROFILES_FILE), read before anything opens: a broken file stops the start (ConfigError).
  const profiles = await loadProfileCatalog();
  let trunkId: string;
  let livekit: LiveKitClients;
  if (options.livekit) {
    trunkId = requireOutboundTrunk(config);
    livekit = options.livekit;
  } else {
    const { trunkId: trunk, ...credentials } = requireDialSettings(config);
    trunkId = trunk;
    livekit = createLiveKitClients(credentials);
  }

  const connection: RedisClient = createWorkerConnection(config.redis);
  const store = new CallStore(connection, config.queuePrefix, clock, {
    dialReplicaAcks: config.dialReplicaAcks,
    onReplicaShortfall: (shortfall, write) =>
      logger.warn(
        shortfall,
        write === 'dial_mark'
          ? 'the dial mark is not known to be on the Redis replicas (too few acknowledged it, or the connection was made again since); not dialing, retrying after a back-off'
          : "the attempt's end is not known to be on the Redis replicas (too few acknowledged it, or the connection was made again since); writing it again",
      ),
    onAttemptEndRetry: (err, elapsedMs, end) =>
      logger.warn({ ...end, err: errorMessage(err), elapsedMs }, "the attempt's end met a lost Redis connection; writing it again"),
  });
  const reporter = new ResultReporter(connection, config.queuePrefix);
  const limiter = new DialRateLimiter(connection, store.keys.dialWindow(), config.dial.cps);
  const backoff = new PlatformBackoff(connection, store.keys.platformBackoff(), store.keys.platformFailures(), config.dial.platformBackoffMs);
  const watchdog = new OutcomeWatchdog(connection, config.queuePrefix, config.dial.outcomeTimeoutMs);
  const deps: DialDeps = {
    livekit,
    store,
    limiter,
    backoff,
    trunkId,
    agentName: config.agentName,
    ringingTimeoutS: config.dial.ringingTimeoutS,
    clock,
    logger,
  };
  /** Aborted when draining starts: jobs still waiting for a CPS slot go back to the queue instead of dialing. */
  const draining = new AbortController();
  setMaxListeners(0, draining.signal); // every job waiting for a CPS slot listens to it

  const report = (result: Omit<CallResult, 'endedAt' | 'reportedBy'>) =>
    reporter.report({ ...result, reportedBy: 'consumer', endedAt: clock.now() });

  const activeCap = config.dial.activeCalls;
  // the cap `report --watch` shows is the one consumers dial under, not the watcher's own environment
  void publishOutboundCap(connection, config.queuePrefix, activeCap ? activeCap.max - activeCap.reservedInbound : undefined).catch((err: unknown) =>
    logger.warn({ err: errorMessage(err) }, 'could not publish DIAL_MAX_ACTIVE_CALLS for report --watch'),
  );
  const leases = new ActiveCallLeases(connection, config.queuePrefix);
  const campaigns = new CampaignStore(connection, config.queuePrefix, clock);
  const campaignRate = new CampaignRate(connection, config.queuePrefix);
  /** Why each held call waits, for `report --watch` (written only when a call's reason changes). */
  const heldCalls = new HeldCalls(connection, config.queuePrefix, clock);
  /**
   * Records a call waiting for a distant CPS slot as held for `cps` (report --watch), cleared once its dial is under
   * way, or by `settle` when the attempt ended without dialing (a drain gave the slot back, a dispatch failed).
   */
  const cpsHoldHooks = (call: CallJob, log: Logger): DialAttemptHooks & { settle(result: DialAttemptResult): Promise<void> } => {
    let held: Promise<unknown> | undefined;
    let released = false;
    const failed = (err: unknown): void => log.error({ err: errorMessage(err) }, 'could not record why the call is held');
    const release = (hold: Promise<unknown>): Promise<void> => {
      released = true;
      return hold.then(() => heldCalls.release(call.campaignId, [call.callId])).catch(failed);
    };
    return {
      onCpsWait: () => {
        metrics?.callsHeld.inc({ reason: 'cps' });
        held ??= heldCalls.hold(call.campaignId, call.callId, 'cps').catch(failed);
      },
      onDialing: () => {
        if (held && !released) void release(held);
      },
      // a consumer that lost the job leaves the record to the one that holds it now
      settle: async (result) => {
        if (held && !released && result.status !== 'lost_ownership') await release(held);
      },
    };
  };
  /** A campaign's retry delays over the global ones (DIAL_RETRY_DELAY_*_S). */
  const retryDelaysOf = (campaign: Campaign | undefined): RetryDelays => {
    const own = campaign?.retry_delays_s;
    const global = config.dial.retryDelays;
    if (!own) return global;
    return {
      busyMs: own.busy === undefined ? global.busyMs : own.busy * SECOND,
      noAnswerMs: own.no_answer === undefined ? global.noAnswerMs : own.no_answer * SECOND,
      failedMs: own.failed === undefined ? global.failedMs : own.failed * SECOND,
    };
  };
  const leaseTtlMs = dialingLeaseTtlMs(config.dial.lockDurationMs, config.dial.ringingTimeoutS);
  const answeredLeaseTtlMs = config.dial.outcomeTimeoutMs + ANSWERED_LEASE_MARGIN_MS;
  /** The lease gate of a call: the global cap and its campaign's own (undefined: neither is set, no lease taken). */
  const leaseGate = (campaign: Campaign | undefined): ActiveCallGateDeps | undefined =>
    activeCap || campaign?.max_active_calls
      ? { leases, limit: activeCap ? activeCap.max - activeCap.reservedInbound : 0, campaignLimit: campaign?.max_active_calls, ttlMs: leaseTtlMs, clock, random }
      : undefined;

  /**
   * After the attempt: an answered call keeps its lease until its outcome (renewed to outlive the outcome watchdog);
   * one that ended unanswered gives it back; one whose fate is unknown here (another consumer may own it, or LiveKit
   * could not be asked) keeps it until its time to live runs out or its next run renews it.
   * Only a run that went through the lease gate settles: with neither DIAL_MAX_ACTIVE_CALLS nor the campaign's
   * max_active_calls set, no lease was taken and there is nothing to renew or give back (the settle was a transaction,
   * and for `already_ended` a record read, on every dial). A lease an earlier run took under a cap removed since is
   * then left to its time to live.
   */
  const settleLease = async (call: CallJob, result: DialAttemptResult, log: Logger, leased: boolean): Promise<void> => {
    if (!leased) return;
    try {
      switch (result.status) {
        case 'answered':
          await leases.renew(call, answeredLeaseTtlMs);
          return;
        case 'already_ended': {
          const record = await store.get(call.campaignId, call.callId);
          if (record?.state === 'in_call') await leases.renew(call, answeredLeaseTtlMs);
          else await leases.release(call);
          return;
        }
        case 'not_started':
        case 'failed':
          await leases.release(call);
          return;
        case 'lost_ownership':
        case 'unreachable':
          return;
      }
    } catch (err) {
      log.error({ err, status: result.status }, 'could not settle the lease of a call in progress; its time to live frees it');
    }
  };

  const agentCheck: AgentCheckDeps = {
    rooms: livekit.rooms,
    dispatches: livekit.dispatch,
    store,
    report: (result) => reporter.report(result),
    graceMs: config.dial.agentJoinGraceMs,
    assignedMaxMs: config.dial.agentJoinAssignedMaxMs,
    clock,
    onNoAgent: () => metrics?.callsWithoutAgent.inc(),
    onCallEnded: (outcome) => metrics?.callOutcomes.inc({ outcome }),
  };

  const gates: DialGateDeps = { store, clock, defaultWindow: config.dial.callWindow, predialCheck: config.predialCheck, profiles };
  const gateReader = new GateReader(connection, config.queuePrefix, store, backoff.key);

  /**
   * Ends a call whose job cannot be parsed but names a usable call id: recorded and reported `failed` when the call is
   * this job's own (new, or still queued under this very job id). A malformed job naming another job's call, which
   * may be ringing or connected right now, ends nothing.
   */
  const endMalformedCall = async (callId: string, campaignId: string, job: Job<PushedJobData, DialJobResult>, reason: string): Promise<boolean> => {
    const raw = job.data.phoneNumber ?? job.data.phone_number;
    const [status] = await store.createCalls(campaignId, [{ callId, phoneNumber: typeof raw === 'string' ? raw : '', metadata: {} }]);
    const own = status === 'created' || (status === 'queued' && job.id === callId);
    if (own) await report({ callId, campaignId, outcome: 'failed', reason });
    return own;
  };

  /** Ends a call an operator canceled while its attempt `attempt` rang, instead of trying it again. */
  const endCanceled = async (call: CallJob, attempt: number, log: Logger): Promise<never> => {
    log.info('canceled by an operator while the attempt rang; not trying again');
    await report({ callId: call.callId, campaignId: call.campaignId, outcome: 'canceled', reason: CANCEL_REASON, attempt });
    throw new CallEndedError(`canceled after ${attempt} attempt(s)`);
  };

  /**
   * Platform trouble: backs the whole queue off (every process; claimDial refuses dials while it runs), and puts the
   * job back without spending its attempt, unless the call met DIAL_MAX_PLATFORM_ERRORS of them: then it ends `failed`.
   */
  const backOff = async (call: CallJob, attempt: number, reason: string, log: Logger): Promise<never> => {
    if (await store.isCancelRequested(call.campaignId, call.callId)) return endCanceled(call, attempt, log);
    const { backoffMs, consecutiveFailures } = await backoff.failed();
    // Every failure counts against the call. Calls wait out a running back-off before they are dialed or followed
    // (see below), so a call meets at most about one failure per back-off: the limit spans minutes, not seconds.
    const platformErrors = await store.notePlatformError(call.campaignId, call.callId);
    if (platformErrors >= config.dial.maxPlatformErrors) {
      const ending = `LiveKit unavailable: gave up after ${platformErrors} platform errors (last: ${reason})`;
      log.error({ reason, platformErrors }, 'call met too many LiveKit/network errors; ending it as failed');
      await report({ callId: call.callId, campaignId: call.campaignId, outcome: 'failed', reason: ending, attempt });
      throw new CallEndedError(ending);
    }
    log.warn({ reason, backoffMs, consecutiveFailures, platformErrors }, 'LiveKit or network trouble: backing the dial queue off, attempt not spent');
    await Promise.all(workers.map((w) => w.rateLimit(backoffMs)));
    throw Worker.RateLimitError();
  };

  /** The shards' queues a misrouted job is moved to (opened on first use). */
  const shardQueues = new CallQueues(connection, config.queuePrefix);
  /**
   * Moves a job found on another shard's queue than its campaign's (a service pushing straight onto `calls` under
   * QUEUE_PREFIX, whatever the campaign) to its campaign's shard, where its record, lock and claim share a slot. Its
   * job id there is the call id, as for every job the dialer adds (BullMQ refuses a given id that is an integer, which
   * its own ids for jobs pushed without one are): done twice (this process died in between), the second add finds the
   * job and adds nothing.
   */
  const forwardToShard = async (job: Job<PushedJobData, DialJobResult>, call: CallJob, log: Logger): Promise<DialJobResult> => {
    const queue = shardQueues.forCampaign(call.campaignId);
    await queue.add(job.name, job.data, { ...job.opts, jobId: call.callId, delay: 0 });
    const shard = config.callShards.prefixOf(call.campaignId);
    log.info({ shard }, "job moved to its campaign's call shard");
    return { status: 'forwarded', shard };
  };

  const processDialJob = async (job: Job<PushedJobData, DialJobResult>, shard: number, token?: string, lockLost?: AbortSignal): Promise<DialJobResult> => {
    const shardWorker = workers[shard];
    if (!shardWorker) throw new Error(`no dial worker for call shard ${shard}`);
    const parsed = parseCallJob(job.data, job.id, job.timestamp, config.dial.defaultRegion);
    if (!parsed.ok) {
      if (parsed.callId && parsed.campaignId && !(await endMalformedCall(parsed.callId, parsed.campaignId, job, parsed.reason))) {
        logger.warn({ jobId: job.id, callId: parsed.callId, campaignId: parsed.campaignId }, 'malformed job names a call another job carries; that call is left alone');
      }
      throw new MalformedCallJobError(parsed.reason); // logged once, by the failed handler
    }
    const { call: given } = parsed;
    if (!token || job.id === undefined) throw new Error('BullMQ gave no lock token or job id: the call cannot be dialed safely');
    // A job pushed straight onto `calls` without BullMQ `attempts` gets DIAL_MAX_ATTEMPTS, counted in its data.
    // (BullMQ stores a missing `attempts` as 0.) One pushed with `attempts` but not our `backoff` type is retried the
    // same way: BullMQ would retry it at once, without the retry delays (it calls backoffStrategy only for a custom type).
    const foreign = !job.opts.attempts || !job.opts.backoff;
    const attempt = (foreign ? foreignAttemptsMade(job.data) : job.attemptsMade) + 1;
    const log = logger.child({ callId: given.callId, campaignId: given.campaignId, attempt });
    if (config.callShards.prefixOf(given.campaignId) !== config.callShards.prefixes[shard]) return forwardToShard(job, given, log);
    // Jobs other services push have no record yet: one exists before anything can end the call.
    await store.createCall(given.campaignId, given);

    // The campaign object, the cancel request, the do-not-call list, the pause and the platform back-off, read afresh
    // for every call in one round trip (gateReads.ts): an edit holds from the next call any consumer takes.
    const reads = await gateReader.read(given);
    const campaign = campaigns.parse(given.campaignId, reads.campaignDocument);
    const { decision: campaignDecision, call } = checkCampaignGate(given, campaign, clock.now(), config.dial.timeZone);
    // a campaign may only lower the attempts a job carries (BullMQ retries up to the job's own `attempts`)
    const maxAttempts = Math.min(job.opts.attempts || config.dial.maxAttempts, campaign?.max_attempts ?? Number.POSITIVE_INFINITY);

    const lockToken = token;
    const jobId = job.id;
    // Whether a hold may be on record for the call (heldCalls.ts): BullMQ counts every start of the job
    // (attemptsStarted: each run, whether it went back to wait or delayed, or stalled), so on its first the only hold
    // there can be is one this run wrote. Releasing none sent a command on every dial.
    let mayBeHeld = job.attemptsStarted !== 1;
    const releaseHold = async (): Promise<void> => {
      if (mayBeHeld) await heldCalls.release(call.campaignId, [call.callId]);
    };
    const applyGate = async (gate: Exclude<GateDecision, { kind: 'ring' }>): Promise<DialJobResult> => {
      if (gate.kind === 'end') {
        log.info({ reason: gate.reason }, gate.log);
        await releaseHold();
        await report({ callId: call.callId, campaignId: call.campaignId, outcome: gate.outcome, reason: gate.reason, attempt: attempt - 1 });
        return { status: gate.outcome };
      }
      metrics?.callsHeld.inc({ reason: gate.gate });
      await heldCalls.hold(call.campaignId, call.callId, gate.gate);
      if (gate.gate === 'paused') await store.holdForPause(call.campaignId, jobId);
      if (gate.warn) log.warn({ ...gate.details, waitMs: gate.delayMs }, gate.log);
      else log.info({ ...gate.details, waitMs: gate.delayMs }, gate.log);
      return waitWithoutAttempt(job, lockToken, gate.delayMs);
    };
    if (campaignDecision.kind !== 'ring') return applyGate(campaignDecision);
    const gate = await checkDialGates(call, attempt, { ...gates, store: answeredGateStore(given, reads, store) });
    if (gate.kind !== 'ring') return applyGate(gate);

    // While LiveKit is backed off nothing is dialed, nor asked about: the call waits, spending nothing. Read with the
    // gates, unless a pre-dial check (an HTTP request) came between: then it is read again now.
    const backingOff = config.predialCheck ? await backoff.remainingMs() : reads.backoffMs;
    if (backingOff > 0) {
      await heldCalls.hold(call.campaignId, call.callId, 'backoff');
      return waitWithoutAttempt(job, token, backingOff);
    }

    // The campaign's own rate (its cps, or where its ramp stands), counted apart from the global DIAL_CPS window.
    const cps = campaign ? effectiveCps(campaign, clock.now()) : undefined;
    if (cps !== undefined) {
      const waitMs = await campaignRate.take(call.campaignId, cps);
      if (waitMs > 0) return applyGate({ kind: 'wait', delayMs: waitMs, gate: 'campaign_rate', log: "campaign at its own call rate; the call waits", details: { cps } });
    }

    // DIAL_MAX_ACTIVE_CALLS and the campaign's max_active_calls: the call waits for a lease of a call in progress
    // before it rings, spending nothing.
    const leaseDeps = leaseGate(campaign);
    let stopRenewing: (() => void) | undefined;
    if (leaseDeps) {
      const stop = lockLost ? AbortSignal.any([draining.signal, lockLost]) : draining.signal;
      let recordingHold: Promise<unknown> | undefined;
      const onFull = (active: number) => {
        metrics?.callsHeld.inc({ reason: 'active_calls' });
        log.info({ active, limit: leaseDeps.limit }, 'calls in progress at their cap; the call waits for one to end');
        // recorded while the call waits in its slot (the wait may last ACTIVE_LEASE_MAX_WAIT_MS)
        mayBeHeld = true;
        recordingHold = heldCalls.hold(call.campaignId, call.callId, 'active_calls').catch((err: unknown) => log.error({ err }, 'could not record why the call is held'));
      };
      const wait = await waitForActiveCallLease(call, leaseDeps, stop, onFull);
      await recordingHold;
      if (wait.kind === 'stopped') {
        if (lockLost?.aborted) return waitWithoutAttempt(job, token, REQUEUE_DELAY_MS);
        await heldCalls.release(call.campaignId, [call.callId]); // nothing holds it now: it waits for the next consumer
        throw Worker.RateLimitError(); // draining: back to waiting, attempt not spent
      }
      if (wait.kind === 'campaign_full') {
        // outside the worker slot: other campaigns' calls may ring meanwhile; an edited cap holds at the next look
        return applyGate({ kind: 'wait', delayMs: capRecheckMs, gate: 'campaign_cap', log: 'campaign at its cap of calls in progress; the call waits', details: { active: wait.active } });
      }
      if (wait.kind !== 'held') return waitWithoutAttempt(job, token, capRecheckMs);
      stopRenewing = keepLeaseAlive(leaseDeps.leases, call, leaseDeps.ttlMs, log);
    }

    // no gate holds the call any more: it goes on to its CPS slot and dials
    await releaseHold();
    const dialStarted = performance.now();
    metrics?.callsRinging.inc();
    let result: DialAttemptResult;
    const lock = { key: shardWorker.toKey(`${job.id}:lock`), token };
    try {
      const callDeps: DialDeps = {
        ...deps,
        ...(campaign?.trunk_id ? { trunkId: campaign.trunk_id } : {}),
        ...(cps !== undefined ? { campaignRate: { logKey: campaignRate.dialLogKey(call.campaignId), cps } } : {}),
        ...notAfter(call, campaign),
      };
      const hooks = cpsHoldHooks(call, log);
      result = await dialAttempt(call, attempt, callDeps, log, { lock, draining: draining.signal, lockLost }, hooks);
      await hooks.settle(result);
    } finally {
      stopRenewing?.();
      metrics?.callsRinging.dec();
    }
    // the dial's own figures: an answer is an answer, whether or not the agent turns up after it
    const measured = attemptResultLabel(result);
    const dialSeconds = (performance.now() - dialStarted) / SECOND;
    // An answered call (a recovered one too) needs its agent in the room: with none after AGENT_JOIN_GRACE_MS (longer
    // while its job is assigned) the attempt is ended on the record, the call hung up, and the attempt ends `failed`
    // here (retried below like any failed attempt; on the last one the call's outcome is already written and reported,
    // so the repeat below is a no-op), instead of waiting for the outcome watchdog.
    // The attempt whose end this is: the run's own, or an earlier one a failed run left open (dialAttempt settles that
    // first). Retry decisions count the run's own number: BullMQ spent it.
    const ended = (result.status === 'answered' || result.status === 'failed' ? result.settledAttempt : undefined) ?? attempt;
    const answered = { callId: call.callId, campaignId: call.campaignId, attempt: ended, final: attempt >= maxAttempts, lock };
    result = await requireAgentAfterAnswer(result, answered, agentCheck, log);
    await settleLease(call, result, log, leaseDeps !== undefined);
    if (metrics && measured) {
      metrics.dialAttempts.inc({ result: measured });
      metrics.dialSeconds.observe({ result: measured }, dialSeconds);
    }
    switch (result.status) {
      case 'not_started':
        await store.endAttempt(call.campaignId, call.callId, attempt, 'waiting_retry', { result: 'not_started' });
        if (result.pastEnd) {
          // its campaign ended or it expired while it waited for its slot: the gates end it at the next run
          return waitWithoutAttempt(job, token, REQUEUE_DELAY_MS);
        }
        log.info('consumer draining before a CPS slot came up; call returned to the queue');
        throw Worker.RateLimitError(); // back to waiting, attempt not spent
      case 'lost_ownership':
        // Another consumer holds the job now and carries the call: putting it back fails on its lock, which is logged
        // once by the error handler. If this consumer still holds it after all, a fresh run decides what to do.
        log.warn('the dial job may have moved to another consumer; this one leaves the call alone');
        return waitWithoutAttempt(job, token, REQUEUE_DELAY_MS);
      case 'already_ended':
        log.info('call already connected or ended; not dialing again');
        return result;
      case 'unreachable':
        // the record stays as it is: the next try follows this attempt again
        return backOff(call, attempt, result.reason, log);
      case 'answered':
        await backoff.succeeded();
        await store.endAttempt(call.campaignId, call.callId, ended, 'in_call', { result: 'answered' });
        await watchdog.arm({ callId: call.callId, campaignId: call.campaignId, attempt: ended });
        log.info({ room: result.room, recovered: result.recovered }, 'call answered; the agent owns it now');
        return { status: 'answered', room: result.room, recovered: result.recovered };
      case 'failed':
        break;
    }

    const { end } = result;
    if (end.kind === 'platform') {
      await store.endAttempt(call.campaignId, call.callId, ended, 'waiting_retry', { result: 'platform_error' });
      return backOff(call, ended, end.reason, log);
    }
    await backoff.succeeded(); // the carrier answered with a status: LiveKit works
    const sip = { sipStatusCode: end.sipStatusCode, sipStatus: end.sipStatus };
    const retry =
      end.kind !== 'final' && attempt < maxAttempts ? { outcome: end.outcome, delayMs: retryDelayMs(end.outcome, attempt, retryDelaysOf(campaign), random) } : undefined;
    // a retry due only after the call expires (or its campaign ends) would never ring: the call ends now, not then
    const tooLate = retry && retryPastEnd(call, campaign, clock.now() + retry.delayMs);
    // an operator canceled the call while this attempt rang (cancelCalls): it is not tried again
    const canceled = retry !== undefined && (await store.isCancelRequested(call.campaignId, call.callId));
    const final = !retry || tooLate !== undefined || canceled;
    await store.endAttempt(call.campaignId, call.callId, ended, final ? 'dialing' : 'waiting_retry', { result: end.outcome, kind: end.kind, reason: end.reason, ...sip });
    if (canceled) return endCanceled(call, ended, log);
    if (retry && tooLate === undefined) {
      log.info({ outcome: end.outcome, reason: end.reason, retryInMs: retry.delayMs, ...sip }, 'attempt failed; retrying later');
      if (foreign) {
        await job.updateData({ ...job.data, [FOREIGN_ATTEMPTS_FIELD]: attempt });
        return waitWithoutAttempt(job, token, retry.delayMs);
      }
      throw new RetryDialError(retry.outcome, retry.delayMs, end.sipStatusCode, end.sipStatus);
    }
    if (tooLate !== undefined) {
      const reason = `no attempt ${attempt + 1} before ${tooLate} (attempt ${attempt} ended ${end.outcome}${sip.sipStatusCode ? `, SIP ${sip.sipStatusCode}` : ''})`;
      log.info({ outcome: end.outcome, ...sip }, `attempt failed; ${reason}: not retrying`);
      await report({ callId: call.callId, campaignId: call.campaignId, outcome: 'expired', reason, attempt: ended });
      throw new CallEndedError(`expired after ${attempt} attempt(s)`);
    }
    if (end.kind === 'final' && end.trunkConfigurationError) {
      log.error({ ...sip }, 'SIP trunk rejected the call: check the outbound trunk credentials and allowed numbers');
    }
    await report({ callId: call.callId, campaignId: call.campaignId, outcome: end.outcome, reason: end.reason, attempt: ended, ...sip });
    throw new CallEndedError(`${end.outcome} after ${attempt} attempt(s)${sip.sipStatusCode ? ` (SIP ${sip.sipStatusCode})` : ''}`);
  };

  // One worker per call shard (callShards.ts; one with the default CALL_SHARDS), each with DIAL_CONCURRENCY slots.
  const workers: Array<Worker<PushedJobData, DialJobResult>> = [];
  config.callShards.prefixes.forEach((prefix, shard) => {
    workers.push(startShardWorker(prefix, shard));
  });
  const [worker] = workers;
  if (!worker) throw new Error('no call shard to work');

  function startShardWorker(prefix: string, shard: number): Worker<PushedJobData, DialJobResult> {
    const shardWorker = new Worker<PushedJobData, DialJobResult>(CALLS_QUEUE, (job, token, signal) => processDialJob(job, shard, token, signal), {
      connection,
      prefix,
      concurrency: config.dial.concurrency,
      lockDuration: config.dial.lockDurationMs,
      stalledInterval: Math.max(MIN_STALLED_INTERVAL_MS, config.dial.lockDurationMs / 2),
      maxStalledCount: MAX_STALLED_COUNT,
      settings: {
        backoffStrategy: async (attemptsMade, _type, err, job) => {
          if (err instanceof RetryDialError) return err.delayMs;
          const outcome = 'failed';
          const data = job?.data as Record<string, unknown> | undefined;
          const campaignId = data?.campaignId ?? data?.campaign_id;
          const campaign = typeof campaignId === 'string' ? await campaigns.get(campaignId).catch(() => undefined) : undefined;
          return retryDelayMs(outcome, attemptsMade, retryDelaysOf(campaign), random);
        },
      },
    });
    shardWorker.on('failed', onJobFailed);
    shardWorker.on('error', (err) => logger.error({ err, shard: prefix }, 'dial worker error'));
    return shardWorker;
  }

  /**
   * Every way a job can end for good writes the call's one outcome: ours were reported before CallEndedError or
   * MalformedCallJobError was thrown; anything else (an unexpected error on the last attempt, BullMQ's "job stalled
   * more than allowable limit" after consumers died holding it) is reported here.
   */
  function onJobFailed(job: Job<PushedJobData, DialJobResult> | undefined, err: Error): void {
    if (!job) return;
    if (err instanceof CallEndedError || err instanceof RetryDialError) return;
    if (err instanceof MalformedCallJobError) {
      logger.error({ jobId: job.id, reason: err.message }, 'malformed job on the calls queue; skipped');
      return;
    }
    const retrying = !(err instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts || 1);
    if (retrying) return;
    const parsed = parseCallJob(job.data, job.id, job.timestamp, config.dial.defaultRegion);
    const ids = parsed.ok ? { callId: parsed.call.callId, campaignId: parsed.call.campaignId } : { callId: parsed.callId, campaignId: parsed.campaignId };
    logger.error({ ...ids, err }, 'dial job failed for good; reporting the call as failed');
    if (!ids.callId || !ids.campaignId) return;
    report({ callId: ids.callId, campaignId: ids.campaignId, outcome: 'failed', reason: err.message, attempt: job.attemptsMade }).catch((reportErr: unknown) =>
      logger.error({ ...ids, err: reportErr }, 'could not report the failed call'),
    );
  }

  let closing: Promise<void> | undefined;
  let forced: Promise<void> | undefined;
  const cleanup = async () => {
    await shardQueues.close().catch((err: unknown) => logger.error({ err }, "closing the call shards' queues failed"));
    await reporter.close().catch((err: unknown) => logger.error({ err }, 'closing the result reporter failed'));
    await watchdog.close().catch((err: unknown) => logger.error({ err }, 'closing the outcome watchdog failed'));
    await closeConnection(connection);
  };
  /** Closes every shard's worker (each failure logged on its own), then what they shared. */
  const closeWorkers = (force: boolean): Promise<void> =>
    Promise.all(
      workers.map((w) =>
        w.close(force).catch((err: unknown) => logger.error({ err, shard: w.opts.prefix }, force ? 'forced close of the dial worker failed' : 'closing the dial worker failed')),
      ),
    ).then(cleanup);
  return {
    worker,
    workers,
    close(force = false) {
      draining.abort();
      if (force) {
        forced ??= closeWorkers(true);
        return forced;
      }
      closing ??= closeWorkers(false);
      return closing;
    },
  };
}
