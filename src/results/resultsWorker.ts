import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { CampaignStore } from '../campaigns/campaignStore.js';
import { CallRecycler } from '../campaigns/recycle.js';
import { CallProducer } from '../producer/enqueueCalls.js';
import { CallStore } from '../core/callStore.js';
import { DEFAULT_DIAL_MAX_ATTEMPTS, DEFAULT_RECORD_RETENTION_DAYS, loadConfig, type DialerConfig } from '../core/config.js';
import { createLogger, type Logger } from '../core/logger.js';
import type { DialerMetrics } from '../core/metrics.js';
import { callResultSchema, terminalTransition, type CallResult } from '../core/outcomes.js';
import { CALL_RESULTS_QUEUE } from '../core/queues.js';
import { closeConnection, createWorkerConnection } from '../core/redisConnection.js';
import { ResultReporter } from '../core/reportResult.js';
import { systemClock, type Clock } from '../core/time.js';
import { startOutcomeWatchdogWorker } from './outcomeWatchdog.js';
import { recordRetentionSeconds } from './retention.js';
import { WebhookOutbox, startWebhookWorker, webhookRoute } from './webhooks.js';

/**
 * A result refused because its attempt was hung up by the consumer for want of an agent (an agent that joined as the
 * consumer gave up on it): logged where it is thrown, and its job removed once failed.
 */
class AttemptHungUpError extends UnrecoverableError {}

/** Results are small Redis writes: a few in parallel keep up with any dial rate. */
export const RESULTS_CONCURRENCY = 16;

export interface ResultsWorkerOptions {
  /** Defaults to the environment's settings (loadConfig). */
  config?: Pick<DialerConfig, 'redisUrl' | 'queuePrefix' | 'logLevel'> & Partial<Pick<DialerConfig, 'redis' | 'webhook' | 'recordRetentionDays' | 'dial'>>;
  logger?: Logger;
  clock?: Clock;
  /** Where applied outcomes and webhook deliveries are counted. */
  metrics?: DialerMetrics;
  /** The first of the doubling delays between webhook delivery attempts (default FIRST_RETRY_DELAY_MS, 2 s). */
  webhookFirstRetryDelayMs?: number;
  /** Called after a terminal outcome was applied for the first time (webhooks, live progress). */
  onApplied?: (result: ReturnType<typeof callResultSchema.parse>) => void;
}

export interface ResultsWorkerHandle {
  worker: Worker;
  /** Drains in-flight results, then closes; idempotent. */
  close(force?: boolean): Promise<void>;
}

/**
 * Applies `call-results` to call records and campaign counters, ends connected calls whose agent never reported as
 * `failed` (the outcome watchdog), and POSTs each terminal outcome to its campaign's webhook, else RESULTS_WEBHOOK_URL
 * when set. A terminal
 * outcome is applied once: the record's state check makes a second report for the same call id a no-op, even after
 * its job is gone. A result that cannot happen (an unknown call id other than an inbound `in-…` one, or a reporter
 * ending a call from a state it cannot end it from: see terminalTransition) is refused: logged once, its job failed.
 * An ended call's record expires RECORD_RETENTION_DAYS after it ends (see retention.ts).
 */
export async function startResultsWorker(options: ResultsWorkerOptions = {}): Promise<ResultsWorkerHandle> {
  const config = options.config ?? loadConfig(process.env);
  const logger = (options.logger ?? createLogger(config.logLevel)).child({ component: 'results-worker' });
  const connection = createWorkerConnection(config.redis ?? config.redisUrl);
  const clock = options.clock ?? systemClock;
  const store = new CallStore(connection, config.queuePrefix, clock);
  const reporter = new ResultReporter(connection, config.queuePrefix);
  const watchdog = startOutcomeWatchdogWorker({ connection, prefix: config.queuePrefix, store, reporter, clock, logger });
  const retentionS = recordRetentionSeconds(config.recordRetentionDays ?? DEFAULT_RECORD_RETENTION_DAYS);
  // outcomes go to their campaign's webhook, else RESULTS_WEBHOOK_URL: any campaign may get one while this runs
  const campaigns = new CampaignStore(connection, config.queuePrefix, clock);
  const route = webhookRoute(campaigns, config.webhook);
  const outbox = new WebhookOutbox(connection, config.queuePrefix, retentionS, options.webhookFirstRetryDelayMs);
  // campaigns' recycle rules: a call ended with an outcome its campaign recycles is enqueued again as a new series
  const producer = new CallProducer({ connection, prefix: config.queuePrefix, maxAttempts: config.dial?.maxAttempts ?? DEFAULT_DIAL_MAX_ATTEMPTS, clock, defaultRegion: config.dial?.defaultRegion });
  const recycler = new CallRecycler(connection, config.queuePrefix, campaigns, producer, clock);
  const deliveries = startWebhookWorker({ connection, prefix: config.queuePrefix, route, clock, logger, metrics: options.metrics });

  /** This very result already ended the call (a retry of its job after the record was written): deliver it. */
  const recordedAlready = async (result: CallResult): Promise<boolean> => {
    const record = await store.get(result.campaignId, result.callId);
    return record?.outcome === result.outcome && record.endedAt === result.endedAt;
  };

  /** After a call's outcome is on its record: its webhook (once per call id) and its campaign's recycle rule. */
  const deliver = async (result: CallResult, log: Logger): Promise<void> => {
    if (await route(result.campaignId)) await outbox.enqueue(result);
    const recycled = await recycler.afterEnd(result);
    if (recycled.status === 'recycled' && !recycled.duplicate) {
      log.info({ outcome: result.outcome, recycledAs: recycled.callId, series: recycled.series, at: new Date(recycled.at).toISOString() }, 'call recycled by its campaign rule');
    } else if (recycled.status === 'none' && recycled.why.startsWith('not recycled')) {
      log.warn({ outcome: result.outcome, reason: recycled.why }, 'call not recycled');
    }
  };

  /**
   * A report refused because the consumer hung its attempt up for want of an agent may have taken the call's one slot
   * on call-results (jobId = call id) just before the consumer reported the outcome it wrote on the record (the last
   * attempt's `failed`): the consumer's report was then a no-op. So the outcome on record is delivered here; a
   * delivery is once per call id, so the consumer's own report, when it did get through, sends nothing more.
   */
  const deliverOutcomeOnRecord = async (refused: CallResult, log: Logger): Promise<void> => {
    const record = await store.get(refused.campaignId, refused.callId);
    if (record?.state !== 'terminal' || record.outcome === undefined || record.endedAt === undefined) return;
    const onRecord: CallResult = {
      callId: record.callId,
      campaignId: record.campaignId,
      outcome: record.outcome,
      reportedBy: record.details?.reportedBy ?? 'consumer',
      attempt: record.attempts,
      endedAt: record.endedAt,
      ...(record.reason === undefined ? {} : { reason: record.reason }),
      ...(record.sipStatusCode === undefined ? {} : { sipStatusCode: record.sipStatusCode, sipStatus: record.sipStatus }),
    };
    await deliver(onRecord, log);
  };

  const applyResult = async (job: Job<unknown>): Promise<{ applied: boolean }> => {
    const parsed = callResultSchema.safeParse(job.data);
    if (!parsed.success) {
      const reason = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      logger.error({ jobId: job.id, reason }, 'malformed result on call-results; skipped');
      throw new UnrecoverableError(`malformed call result: ${reason}`);
    }
    const result = parsed.data;
    const log = logger.child({ callId: result.callId, campaignId: result.campaignId, attempt: result.attempt });
    const rule = terminalTransition(result);
    const transition = await store.applyTransition(result, rule, { phoneNumber: result.phoneNumber, retentionS });
    if (transition.status === 'refused') {
      const { state } = transition;
      const reason = transition.noAgentAttempt
        ? `${result.reportedBy} may not end attempt ${result.attempt ?? '(latest)'}: the consumer hung it up because no agent had joined the room`
        : state === 'missing'
          ? `no record of call ${result.callId} in campaign ${result.campaignId}`
          : rule.fromAtLatestAttempt.some((s) => s === state)
            ? `${result.reportedBy} may end a call that is ${state} only for its latest attempt, not attempt ${result.attempt ?? '(none)'}`
            : `${result.reportedBy} may not end a call that is ${state}`;
      log.warn({ outcome: result.outcome, reportedBy: result.reportedBy, state, reason }, 'impossible result refused');
      if (transition.noAgentAttempt) {
        await deliverOutcomeOnRecord(result, log);
        throw new AttemptHungUpError(`result refused: ${reason}`);
      }
      throw new UnrecoverableError(`result refused: ${reason}`);
    }
    const applied = transition.status === 'applied';
    if (applied) {
      log.info({ outcome: result.outcome, sipStatusCode: result.sipStatusCode }, 'call ended');
      options.metrics?.callOutcomes.inc({ outcome: result.outcome });
      options.onApplied?.(result);
    } else {
      log.info({ outcome: result.outcome }, 'call had already ended; later report ignored');
    }
    // the call's outcome is this result's (now, or by an earlier run of this job that stopped short of what follows)
    const onRecord = applied || (await recordedAlready(result));
    // An operator's cancel ends the record in the CLI or API process, which serves no metrics: its outcome is counted
    // here, at its report's first run (a retried run may follow one that counted it already).
    if (!applied && onRecord && result.reportedBy === 'operator' && job.attemptsMade === 0) options.metrics?.callOutcomes.inc({ outcome: result.outcome });
    if (onRecord) await deliver(result, log);
    return { applied };
  };

  const worker = new Worker(CALL_RESULTS_QUEUE, applyResult, {
    connection,
    prefix: config.queuePrefix,
    concurrency: RESULTS_CONCURRENCY,
  });
  worker.on('error', (err) => logger.error({ err }, 'results worker error'));
  worker.on('failed', (job, err) => {
    if (err instanceof AttemptHungUpError) {
      // The call goes on (a retry) or has its outcome from the consumer: this refused report must not keep the call's
      // one slot on call-results (jobId = call id), or the call's real outcome would be dropped as a repeat.
      job?.remove().catch((removeErr: unknown) => logger.error({ jobId: job.id, err: removeErr }, 'could not remove a refused result'));
      return;
    }
    if (err instanceof UnrecoverableError) return; // logged where it was thrown
    logger.error({ jobId: job?.id, err }, 'applying a call result failed; BullMQ retries it');
  });

  let closing: Promise<void> | undefined;
  return {
    worker,
    close(force = false) {
      closing ??= Promise.all([
        worker.close(force).catch((err: unknown) => logger.error({ err }, 'closing the results worker failed')),
        watchdog.close(force).catch((err: unknown) => logger.error({ err }, 'closing the outcome watchdog failed')),
        deliveries.close(force).catch((err: unknown) => logger.error({ err }, 'closing the webhook worker failed')),
      ])
        .then(() => recycler.close().catch((err: unknown) => logger.error({ err }, 'closing the call recycler failed')))
        .then(() => producer.close().catch((err: unknown) => logger.error({ err }, 'closing the recycling producer failed')))
        .then(() => outbox.close().catch((err: unknown) => logger.error({ err }, 'closing the webhook outbox failed')))
        .then(() => reporter.close())
        .catch((err: unknown) => logger.error({ err }, 'closing the result reporter failed'))
        .then(() => closeConnection(connection));
      return closing;
    },
  };
}
