import { setMaxListeners } from 'node:events';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CallStore } from '../core/callStore.js';
import { loadConfig, requireDialSettings, requireOutboundTrunk, type DialerConfig } from '../core/config.js';
import { createLiveKitClients, type LiveKitClients } from '../core/livekitClients.js';
import { createLogger, type Logger } from '../core/logger.js';
import type { CallResult } from '../core/outcomes.js';
import { CALLS_QUEUE } from '../core/queues.js';
import { parseCallJob } from './parseCallJob.js';
import { closeConnection, createWorkerConnection } from '../core/redisConnection.js';
import { ResultReporter } from '../core/reportResult.js';
import type { DialerMetrics } from '../core/metrics.js';
import { SECOND, systemClock, type Clock } from '../core/time.js';
import { dialAttempt, type DialDeps } from './dialAttempt.js';
import { checkDialGates, type DialGateDeps } from './dialGates.js';
import { MalformedCallJobError, RetryDialError } from './dialErrors.js';
import { DialRateLimiter } from './dialRateLimiter.js';
import { StallGauge } from './stallGauge.js';
import { platformBackoffMs, retryDelayMs } from './retryPolicy.js';
import { OutcomeWatchdog } from '../results/outcomeWatchdog.js';

/** A job's data as found on `calls`: ours (CallJob) or another service's; parseCallJob validates it. */
type PushedJobData = Record<string, unknown>;

/** Where a job pushed without BullMQ `attempts` keeps its attempt count (BullMQ's counter stays at 0 for it). */
const FOREIGN_ATTEMPTS_FIELD = 'dialAttemptsMade';

function foreignAttemptsMade(data: unknown): number {
  const made = (data as Record<string, unknown> | null)?.[FOREIGN_ATTEMPTS_FIELD];
  return typeof made === 'number' && Number.isInteger(made) && made >= 0 ? made : 0;
}

/** BullMQ's stalled-job check runs at half the lock duration, but not more often than this. */
const MIN_STALLED_INTERVAL_MS = 500;

/** A stalled call (its consumer died) may be picked up this many times before it fails for good. */
export const MAX_STALLED_COUNT = 3;

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
}

/** What a dial job returns when it completes. */
export type DialJobResult =
  | { status: 'answered'; room: string; recovered: boolean }
  | { status: 'already_ended' }
  | { status: 'expired' }
  | { status: 'skipped' };

/** The metric label of an attempt's end; undefined when no call was placed (draining, or the call had ended). */
function attemptResultLabel(result: Awaited<ReturnType<typeof dialAttempt>>): string | undefined {
  switch (result.status) {
    case 'answered':
      return 'answered';
    case 'failed':
      return result.failure.kind === 'platform' ? 'platform_error' : result.failure.outcome;
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
  worker: Worker<PushedJobData, DialJobResult>;
  /** First call drains (ringing calls finish); `force` stops at once. Idempotent per mode. */
  close(force?: boolean): Promise<void>;
}

/**
 * Starts dial workers on `calls`: DIAL_CONCURRENCY calls ringing at once in this process, DIAL_CPS starts per
 * rolling second across all processes. This is where retries happen: BullMQ retries with the per-outcome
 * backoff below, final outcomes are reported to `call-results`, platform trouble backs the whole queue off.
 */
export async function startDialWorker(options: DialWorkerOptions = {}): Promise<DialWorkerHandle> {
  const config = options.config ?? loadConfig(process.env);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const metrics = options.metrics;
  const logger = (options.logger ?? createLogger(config.logLevel)).child({ component: 'dial-worker' });
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

  const connection: Redis = createWorkerConnection(config.redisUrl);
  const store = new CallStore(connection, config.queuePrefix, clock);
  const reporter = new ResultReporter(connection, config.queuePrefix);
  const stalls = new StallGauge();
  const limiter = new DialRateLimiter(connection, store.keys.dialWindow(), config.dial.cps, () => stalls.recentMaxMs());
  const watchdog = new OutcomeWatchdog(connection, config.queuePrefix, config.dial.outcomeTimeoutMs);
  const deps: DialDeps = {
    livekit,
    store,
    limiter,
    trunkId,
    agentName: config.agentName,
    ringingTimeoutS: config.dial.ringingTimeoutS,
    clock,
    logger,
  };
  let consecutivePlatformFailures = 0;
  /** Aborted when draining starts: jobs still waiting for a CPS slot go back to the queue instead of dialing. */
  const draining = new AbortController();
  setMaxListeners(0, draining.signal); // every job waiting for a CPS slot listens to it

  const report = (result: Omit<CallResult, 'endedAt' | 'reportedBy'>) =>
    reporter.report({ ...result, reportedBy: 'consumer', endedAt: clock.now() });

  const gates: DialGateDeps = { store, clock, defaultWindow: config.dial.callWindow, predialCheck: config.predialCheck };

  const processDialJob = async (job: Job<PushedJobData, DialJobResult>, token?: string): Promise<DialJobResult> => {
    const parsed = parseCallJob(job.data, job.id, job.timestamp);
    if (!parsed.ok) {
      if (parsed.callId && parsed.campaignId) {
        await report({ callId: parsed.callId, campaignId: parsed.campaignId, outcome: 'failed', reason: parsed.reason });
      }
      throw new MalformedCallJobError(parsed.reason); // logged once, by the failed handler
    }
    const { call } = parsed;
    // A job pushed straight onto `calls` without BullMQ `attempts` gets DIAL_MAX_ATTEMPTS, counted in its data.
    // (BullMQ stores a missing `attempts` as 0.)
    const foreign = !job.opts.attempts;
    const attempt = (foreign ? foreignAttemptsMade(job.data) : job.attemptsMade) + 1;
    const maxAttempts = job.opts.attempts || config.dial.maxAttempts;
    const log = logger.child({ callId: call.callId, campaignId: call.campaignId, attempt });

    const gate = await checkDialGates(call, attempt, gates);
    if (gate.kind === 'end') {
      log.info({ reason: gate.reason }, gate.log);
      await report({ callId: call.callId, campaignId: call.campaignId, outcome: gate.outcome, reason: gate.reason, attempt: attempt - 1 });
      return { status: gate.outcome };
    }
    if (gate.kind === 'wait') {
      metrics?.callsHeld.inc({ reason: gate.gate });
      if (gate.gate === 'paused' && job.id !== undefined) await store.holdForPause(call.campaignId, job.id);
      if (gate.warn) log.warn({ ...gate.details, waitMs: gate.delayMs }, gate.log);
      else log.info({ ...gate.details, waitMs: gate.delayMs }, gate.log);
      return waitWithoutAttempt(job, token, gate.delayMs);
    }

    const dialStarted = performance.now();
    metrics?.callsRinging.inc();
    let result: Awaited<ReturnType<typeof dialAttempt>>;
    try {
      result = await dialAttempt(call, attempt, deps, log, { draining: draining.signal });
    } finally {
      metrics?.callsRinging.dec();
    }
    const measured = attemptResultLabel(result);
    if (metrics && measured) {
      metrics.dialAttempts.inc({ result: measured });
      metrics.dialSeconds.observe({ result: measured }, (performance.now() - dialStarted) / SECOND);
    }
    if (result.status === 'not_started') {
      await store.endAttempt(call.campaignId, call.callId, attempt, 'waiting_retry', { result: 'not_started' });
      log.info('consumer draining before a CPS slot came up; call returned to the queue');
      throw Worker.RateLimitError(); // back to waiting, attempt not spent
    }
    if (result.status === 'already_ended') {
      log.info('call already connected or ended; not dialing again');
      return result;
    }
    if (result.status === 'answered') {
      consecutivePlatformFailures = 0;
      await store.endAttempt(call.campaignId, call.callId, attempt, 'in_call', { result: 'answered' });
      await watchdog.arm({ callId: call.callId, campaignId: call.campaignId, attempt });
      log.info({ room: result.room, recovered: result.recovered }, 'call answered; the agent owns it now');
      return { status: 'answered', room: result.room, recovered: result.recovered };
    }

    const { failure } = result;
    if (failure.kind === 'platform') {
      consecutivePlatformFailures += 1;
      const backoff = platformBackoffMs(consecutivePlatformFailures);
      await store.endAttempt(call.campaignId, call.callId, attempt, 'waiting_retry', { result: 'platform_error' });
      log.warn({ reason: failure.reason, httpStatus: failure.httpStatus, backoffMs: backoff }, 'LiveKit or network trouble: backing the dial queue off, attempt not spent');
      await worker.rateLimit(backoff);
      throw Worker.RateLimitError();
    }
    consecutivePlatformFailures = 0;
    const sip = { sipStatusCode: failure.sipStatusCode, sipStatus: failure.sipStatus };
    const final = failure.kind === 'final' || attempt >= maxAttempts;
    await store.endAttempt(call.campaignId, call.callId, attempt, final ? 'dialing' : 'waiting_retry', { result: failure.outcome, ...sip });
    if (!final) {
      log.info({ outcome: failure.outcome, ...sip }, 'attempt failed; retrying later');
      if (foreign && token) {
        await job.updateData({ ...job.data, [FOREIGN_ATTEMPTS_FIELD]: attempt });
        return waitWithoutAttempt(job, token, retryDelayMs(failure.outcome, attempt, config.dial.retryDelays, random));
      }
      throw new RetryDialError(failure.outcome, failure.sipStatusCode, failure.sipStatus);
    }
    if (failure.kind === 'final' && failure.trunkConfigurationError) {
      log.error({ ...sip }, 'SIP trunk rejected the call: check the outbound trunk credentials and allowed numbers');
    }
    await report({ callId: call.callId, campaignId: call.campaignId, outcome: failure.outcome, attempt, ...sip });
    throw new UnrecoverableError(`${failure.outcome} after ${attempt} attempt(s)${sip.sipStatusCode ? ` (SIP ${sip.sipStatusCode})` : ''}`);
  };

  const worker: Worker<PushedJobData, DialJobResult> = new Worker<PushedJobData, DialJobResult>(CALLS_QUEUE, processDialJob, {
    connection,
    prefix: config.queuePrefix,
    concurrency: config.dial.concurrency,
    lockDuration: config.dial.lockDurationMs,
    stalledInterval: Math.max(MIN_STALLED_INTERVAL_MS, config.dial.lockDurationMs / 2),
    maxStalledCount: MAX_STALLED_COUNT,
    settings: {
      backoffStrategy: (attemptsMade, _type, err) => {
        const outcome = err instanceof RetryDialError ? err.outcome : 'failed';
        return retryDelayMs(outcome, attemptsMade, config.dial.retryDelays, random);
      },
    },
  });

  worker.on('failed', (job, err) => {
    if (!job) return;
    const retrying = !(err instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts || 1);
    if (retrying || err instanceof RetryDialError) return;
    const parsed = parseCallJob(job.data, job.id, job.timestamp);
    const ids = parsed.ok ? { callId: parsed.call.callId, campaignId: parsed.call.campaignId } : { callId: '', campaignId: '' };
    if (err instanceof MalformedCallJobError) {
      logger.error({ jobId: job.id, reason: err.message }, 'malformed job on the calls queue; skipped');
      return;
    }
    if (err instanceof UnrecoverableError) {
      logger.info({ ...ids, reason: err.message }, 'call ended without connecting');
      return; // its outcome was reported before the error was thrown
    }
    // an unexpected error used the last attempt (or the job stalled too often): the call must still end
    logger.error({ ...ids, err }, 'dial job failed unexpectedly; reporting the call as failed');
    if (!parsed.ok) return;
    report({ ...ids, outcome: 'failed', reason: err.message, attempt: job.attemptsMade }).catch((reportErr: unknown) =>
      logger.error({ ...ids, err: reportErr }, 'could not report the failed call'),
    );
  });
  worker.on('error', (err) => logger.error({ err }, 'dial worker error'));

  let closing: Promise<void> | undefined;
  let forced: Promise<void> | undefined;
  const cleanup = async () => {
    stalls.stop();
    await reporter.close().catch((err: unknown) => logger.error({ err }, 'closing the result reporter failed'));
    await watchdog.close().catch((err: unknown) => logger.error({ err }, 'closing the outcome watchdog failed'));
    await closeConnection(connection);
  };
  return {
    worker,
    close(force = false) {
      draining.abort();
      if (force) {
        forced ??= worker
          .close(true)
          .catch((err: unknown) => logger.error({ err }, 'forced close of the dial worker failed'))
          .then(cleanup);
        return forced;
      }
      closing ??= worker
        .close()
        .catch((err: unknown) => logger.error({ err }, 'closing the dial worker failed'))
        .then(cleanup);
      return closing;
    },
  };
}
