import { UnrecoverableError } from 'bullmq';
import type { RetryableOutcome } from './retryPolicy.js';

/** Thrown to let BullMQ retry a call whose attempt ended busy / unanswered / with a far-end 5xx. */
export class RetryDialError extends Error {
  override readonly name = 'RetryDialError';

  constructor(
    readonly outcome: RetryableOutcome,
    readonly sipStatusCode?: number,
    readonly sipStatus?: string,
  ) {
    super(`attempt ended ${outcome}${sipStatusCode ? ` (SIP ${sipStatusCode}${sipStatus ? ` ${sipStatus}` : ''})` : ''}`);
  }
}

/** A job on `calls` whose payload fails validation: it cannot be dialed, other jobs go on. */
export class MalformedCallJobError extends UnrecoverableError {
  override readonly name = 'MalformedCallJobError';
}
