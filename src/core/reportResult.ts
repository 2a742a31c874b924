import { Queue, type ConnectionOptions } from 'bullmq';
import type { Logger } from './logger.js';
import { CALL_RESULTS_QUEUE } from './queues.js';
import { callResultSchema, type CallResult } from './outcomes.js';

/** Finished result jobs are kept this long for inspection; the call record keeps the outcome for good. */
const RESULT_JOB_RETENTION_S = 24 * 60 * 60;
const RESULT_REPORT_ATTEMPTS = 5;
const RESULT_RETRY_BASE_MS = 1000;

/** Writes terminal outcomes to `call-results`; a second report for the same call id is a no-op (jobId = call id). */
export class ResultReporter {
  private readonly queue: Queue;
  private closed = false;

  /**
   * With `logger`, the queue's Redis errors go to it (at debug: the connection's own error listener reports them
   * already); without, BullMQ prints each one to stderr as a multi-line dump.
   */
  constructor(connection: ConnectionOptions, prefix: string, logger?: Logger) {
    this.queue = new Queue(CALL_RESULTS_QUEUE, { connection, prefix });
    if (logger) this.queue.on('error', (err) => logger.debug({ err: err.message }, 'call-results queue: redis error'));
  }

  /** Reports the call's one terminal outcome (validated here, the edge every reporter shares). */
  async report(result: CallResult): Promise<void> {
    const valid = callResultSchema.parse(result);
    await this.queue.add(valid.outcome, valid, {
      jobId: valid.callId,
      attempts: RESULT_REPORT_ATTEMPTS,
      backoff: { type: 'exponential', delay: RESULT_RETRY_BASE_MS },
      removeOnComplete: { age: RESULT_JOB_RETENTION_S },
      removeOnFail: { age: 7 * RESULT_JOB_RETENTION_S },
    });
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.close();
  }
}
