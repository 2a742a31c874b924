import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { CallStore } from '../core/callStore.js';
import type { Logger } from '../core/logger.js';
import { idSchema } from '../core/queues.js';
import type { ResultReporter } from '../core/reportResult.js';
import { SECOND, type Clock } from '../core/time.js';

/** Internal queue: one delayed check per connected call (not part of the outside contract). */
export const OUTCOME_WATCHDOG_QUEUE = 'call-outcome-watchdog';
const WATCHDOG_RETENTION_S = 24 * 60 * 60;
const WATCHDOG_CHECK_ATTEMPTS = 5;
const WATCHDOG_RETRY_BASE_MS = 1000;

const watchdogSchema = z.object({
  callId: idSchema,
  campaignId: idSchema,
  attempt: z.number().int().positive(),
  timeoutMs: z.number().int().positive(),
});
type WatchdogJob = z.infer<typeof watchdogSchema>;

/** Arms the check that ends a connected call as `failed` if its agent never reports (jobId = call id: armed once). */
export class OutcomeWatchdog {
  private readonly queue: Queue<WatchdogJob>;
  private closed = false;

  constructor(
    connection: ConnectionOptions,
    prefix: string,
    private readonly timeoutMs: number,
  ) {
    this.queue = new Queue<WatchdogJob>(OUTCOME_WATCHDOG_QUEUE, { connection, prefix });
  }

  /** Called when a call connects; `timeoutMs` overrides the default for a call known to run longer. */
  async arm(call: Omit<WatchdogJob, 'timeoutMs'>, timeoutMs = this.timeoutMs): Promise<void> {
    await this.queue.add('check', { ...call, timeoutMs }, {
      jobId: call.callId,
      delay: timeoutMs,
      attempts: WATCHDOG_CHECK_ATTEMPTS,
      backoff: { type: 'exponential', delay: WATCHDOG_RETRY_BASE_MS },
      removeOnComplete: { age: WATCHDOG_RETENTION_S },
      removeOnFail: { age: WATCHDOG_RETENTION_S },
    });
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.close();
  }
}

/**
 * Runs the checks: a call still `in_call` when its check fires is reported `failed` by `watchdog` (a no-op if the
 * agent got there first).
 */
export function startOutcomeWatchdogWorker(options: {
  connection: Redis;
  prefix: string;
  store: CallStore;
  reporter: ResultReporter;
  clock: Clock;
  logger: Logger;
}): Worker<WatchdogJob> {
  const { store, reporter, clock, logger } = options;
  const check = async (job: Job<WatchdogJob>) => {
    const call = watchdogSchema.parse(job.data);
    const record = await store.get(call.campaignId, call.callId);
    const ids = { callId: call.callId, campaignId: call.campaignId, attempt: call.attempt };
    if (!record || record.state === 'terminal') return { ended: true };
    if (record.state !== 'in_call') {
      // a watchdog ends connected calls only; the results worker would refuse anything else (terminalTransition)
      logger.warn({ ...ids, state: record.state }, 'outcome check found the call not in a call; left to its owner');
      return { ended: false };
    }
    const reason = `no outcome reported by the agent within ${Math.round(call.timeoutMs / SECOND)} s of the answer`;
    logger.warn(ids, reason);
    await reporter.report({ ...ids, outcome: 'failed', reason, reportedBy: 'watchdog', endedAt: clock.now() });
    return { ended: false };
  };
  const worker = new Worker<WatchdogJob>(OUTCOME_WATCHDOG_QUEUE, check, { connection: options.connection, prefix: options.prefix });
  worker.on('error', (err) => logger.error({ err }, 'outcome watchdog error'));
  worker.on('failed', (job, err) => logger.error({ jobId: job?.id, err }, 'outcome check failed; BullMQ retries it'));
  return worker;
}
