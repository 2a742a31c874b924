import type { RedisClient } from '../core/redisClient.js';
import { CallStore, type AttemptEndObservation, type CallIdentity } from '../core/callStore.js';
import type { Logger } from '../core/logger.js';
import { MINUTE, type Clock } from '../core/time.js';
import { OutcomeWatchdog } from '../core/outcomeWatchdogQueue.js';
import { errorMessage } from '../core/errors.js';

/** The watchdog fires this long after a call's own maximum duration at the earliest, so it never ends a live call. */
const WATCHDOG_MARGIN_MS = 5 * MINUTE;

/**
 * Book-keeping for calls the agent connected itself (inbound callers, numbers it dialed on a bare dispatch), which
 * no consumer records or watches: the call's record goes `in_call` (so `report` shows it while it lasts) and the
 * results service's outcome watchdog is armed, so a job process that dies without reporting (OOM, SIGKILL) still
 * ends the call as `failed`.
 */
export class AgentCallBook {
  private readonly store: CallStore;
  private readonly watchdog: OutcomeWatchdog;
  private closed = false;

  constructor(
    redis: RedisClient,
    prefix: string,
    clock: Clock,
    private readonly outcomeTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.store = new CallStore(redis, prefix, clock);
    this.watchdog = new OutcomeWatchdog(redis, prefix, outcomeTimeoutMs);
  }

  /**
   * Records a call the agent is about to dial itself (state `dialing`, attempt 1, created if missing), so the outcome
   * of a dial that fails before the answer has a record to end: the results worker refuses agent outcomes for calls
   * it has no record of (other than inbound ones). A failure is logged, never thrown into the call.
   */
  async dialing(call: CallIdentity, room: string): Promise<void> {
    try {
      await this.store.beginAttempt(call, 1, room, { dialSent: true });
    } catch (err) {
      this.logger.error({ err: errorMessage(err) }, 'could not record the call before dialing it; a failed dial may lose its outcome');
    }
  }

  /** Records the connected call and arms its watchdog; a failure is logged, never thrown into the call. */
  async connected(call: CallIdentity, room: string, maxCallDurationMs: number): Promise<void> {
    try {
      await this.store.recordAgentCall(call, room);
      await this.watchdog.arm(
        { callId: call.callId, campaignId: call.campaignId, attempt: 1 },
        Math.max(this.outcomeTimeoutMs, maxCallDurationMs + WATCHDOG_MARGIN_MS),
      );
    } catch (err) {
      this.logger.error({ err: errorMessage(err) }, 'could not record the connected call; it is not watched for a lost outcome');
    }
  }

  /**
   * The consumer-dialed SIP participant of attempt `attempt` left before it answered: notes what the agent saw on the
   * call's record (CallStore.observeAttemptEnd), so a consumer taking over that attempt after its dialer died learns
   * how it ended instead of dialing it again. Nothing without an attempt number; a failure is logged, never thrown.
   */
  async attemptEnded(call: { callId: string; campaignId: string; attempt: number | undefined }, seen: AttemptEndObservation): Promise<void> {
    const context = { callId: call.callId, campaignId: call.campaignId, attempt: call.attempt, ...seen };
    if (call.attempt === undefined) {
      this.logger.warn(context, 'the callee left before answering, but the dispatch names no attempt: not recorded');
      return;
    }
    try {
      const stored = await this.store.observeAttemptEnd(call.campaignId, call.callId, call.attempt, seen);
      this.logger.info({ ...context, stored }, 'the callee left before answering');
    } catch (err) {
      this.logger.error({ ...context, err: errorMessage(err) }, 'could not record how the unanswered attempt ended');
    }
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.watchdog.close().catch((err: unknown) => this.logger.error({ err }, 'closing the outcome watchdog queue failed'));
  }
}
