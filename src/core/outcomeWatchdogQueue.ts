/** The outcome watchdog's queue: arming a check for a connected call (the checks run in src/results). */
import { Queue, type ConnectionOptions } from 'bullmq';
import { z } from 'zod';
import { idSchema } from './queues.js';

/** Internal queue: one delayed check per connected call (not part of the outside contract). */
export const OUTCOME_WATCHDOG_QUEUE = 'call-outcome-watchdog';
const WATCHDOG_RETENTION_S = 24 * 60 * 60;
const WATCHDOG_CHECK_ATTEMPTS = 5;
const WATCHDOG_RETRY_BASE_MS = 1000;

/** One armed check: which call, and how long after its answer it may go without an outcome. */
export const watchdogSchema = z.object({
  callId: idSchema,
  campaignId: idSchema,
  attempt: z.number().int().positive(),
  timeoutMs: z.number().int().positive(),
});
export type WatchdogJob = z.infer<typeof watchdogSchema>;

/**
 * Arms the check that ends a connected call as `failed` if its agent never reports (jobId = call id: armed once).
 * The consumer and the agent arm it when a call connects; the results worker runs the checks
 * (src/results/outcomeWatchdog.ts) and is the only one that ends a call for it, as reporter `watchdog`.
 */
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

