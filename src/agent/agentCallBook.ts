import type { Redis } from 'ioredis';
import { CallStore, type CallIdentity } from '../core/callStore.js';
import type { Logger } from '../core/logger.js';
import { MINUTE, type Clock } from '../core/time.js';
import { OutcomeWatchdog } from '../results/outcomeWatchdog.js';

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
    redis: Redis,
    prefix: string,
    clock: Clock,
    private readonly outcomeTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.store = new CallStore(redis, prefix, clock);
    this.watchdog = new OutcomeWatchdog(redis, prefix, outcomeTimeoutMs);
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
      this.logger.error({ err: (err as Error).message }, 'could not record the connected call; it is not watched for a lost outcome');
    }
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.watchdog.close().catch((err: unknown) => this.logger.error({ err }, 'closing the outcome watchdog queue failed'));
  }
}
