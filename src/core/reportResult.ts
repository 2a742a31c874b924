import { Queue, type ConnectionOptions } from 'bullmq';
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

  constructor(connection: ConnectionOptions, prefix: string) {
    this.queue = new Queue(CALL_RESULTS_QUEUE, { connection, prefix });
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
