import { UnrecoverableError } from 'bullmq';
import type { RetryableOutcome } from './retryPolicy.js';

/**
 * Thrown to let BullMQ retry a call whose attempt ended busy / unanswered / with a far-end 5xx, `delayMs` from now
 * (the delay was drawn before the throw, to check it against the call's expiry; the backoff strategy returns it).
 */
export class RetryDialError extends Error {
  override readonly name = 'RetryDialError';

  constructor(
    readonly outcome: RetryableOutcome,
    readonly delayMs: number,
    readonly sipStatusCode?: number,
    readonly sipStatus?: string,
  ) {
    super(`attempt ended ${outcome}${sipStatusCode ? ` (SIP ${sipStatusCode}${sipStatus ? ` ${sipStatus}` : ''})` : ''}`);
  }
}

/**
 * Ends a dial job whose call's terminal outcome was already reported (a final SIP status, attempts used up, platform
 * errors over the limit): BullMQ must not retry it, and the failed handler must not report it again.
 */
export class CallEndedError extends UnrecoverableError {
  override readonly name = 'CallEndedError';
}

/**
 * A job on `calls` whose payload fails validation: it cannot be dialed, other jobs go on. When the payload still
 * named a usable call id, the call was recorded and reported `failed` before this was thrown.
 */
export class MalformedCallJobError extends UnrecoverableError {
  override readonly name = 'MalformedCallJobError';
}
