/**
 * Why the consumer is holding each call back right now, recorded per call: one small hash per campaign
 * (`<prefix>:dialer:{<campaign>}:held`, call id → `<reason>|<since ms>`), owned by the consumer (dialWorker.ts). A
 * call is recorded when a gate holds it (campaign cap, active-call cap, calling window, pause, the campaign's own
 * rate, its start, the pre-dial check, LiveKit's back-off, its DIAL_CPS slot) and cleared when it goes on to dial,
 * when the consumer ends it or gives it back to the queue undialed (a drain), when it is canceled, and (for `paused`)
 * when its campaign resumes. `report --watch` shows these recorded reasons instead of guessing them from the
 * gates' settings.
 *
 * The write is cheap: one script that compares the reason first and writes (and replicates) nothing when the call is
 * already held for that reason, so a call that comes back to the same closed gate every minute costs one read. The
 * hash lives in the campaign's hash slot and expires HELD_TTL_MS after its last change, so entries a crash left behind
 * (a call purged while held) cannot pile up.
 */
import { dialerKeys, type DialerKeys } from './keys.js';
import { LuaScript, replies } from './luaScript.js';
import type { RedisClient } from './redisClient.js';
import { DAY, type Clock } from './time.js';

/** Why a call is held back, as recorded (the gates of dialGates.ts and dialWorker.ts). */
export const HELD_REASONS = [
  'campaign_cap',
  'active_calls',
  'window',
  'paused',
  'cps',
  'campaign_rate',
  'campaign_start',
  'predial_error',
  'backoff',
] as const;
export type HeldReason = (typeof HELD_REASONS)[number];

/** A held-calls hash expires this long after its last change: past the longest wait a call is given (90 days). */
export const HELD_TTL_MS = 91 * DAY;

const isHeldReason = (value: string): value is HeldReason => (HELD_REASONS as readonly string[]).includes(value);

const holdCall = new LuaScript<[held: string], [callId: string, reason: HeldReason, now: number, ttlMs: number], number>(
  'holdCall',
  new URL('./lua/', import.meta.url),
  1,
  replies.integer,
);

const releaseHeldFor = new LuaScript<[held: string], [reason: HeldReason], number>('releaseHeldFor', new URL('./lua/', import.meta.url), 1, replies.integer);

/** One recorded hold. */
export interface HeldCall {
  callId: string;
  reason: HeldReason;
  /** Epoch ms since when the call has been held for this reason. */
  since: number;
}

export class HeldCalls {
  private readonly keys: DialerKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly clock: Clock,
  ) {
    this.keys = dialerKeys(prefix);
  }

  /** Records that `callId` is held back for `reason`; writes only when its recorded reason is another (true then). */
  async hold(campaignId: string, callId: string, reason: HeldReason): Promise<boolean> {
    return (await holdCall.run(this.redis, [this.keys.heldCalls(campaignId)], [callId, reason, this.clock.now(), HELD_TTL_MS])) === 1;
  }

  /** Clears the record of calls no gate holds any more (they dial now, or ended). */
  async release(campaignId: string, callIds: readonly string[]): Promise<void> {
    if (callIds.length > 0) await this.redis.hdel(this.keys.heldCalls(campaignId), ...callIds);
  }

  /**
   * Clears every call of the campaign held for `reason` (a resume ends every `paused` hold at once, whether or not a
   * consumer runs to look at the calls again); a call recorded meanwhile for another reason keeps it. Returns how many.
   */
  async releaseAll(campaignId: string, reason: HeldReason): Promise<number> {
    return releaseHeldFor.run(this.redis, [this.keys.heldCalls(campaignId)], [reason]);
  }

  /** Every call of the campaign recorded as held, with why and since when (entries this code does not know are left out). */
  async list(campaignId: string): Promise<HeldCall[]> {
    const raw = await this.redis.hgetall(this.keys.heldCalls(campaignId));
    const held: HeldCall[] = [];
    for (const [callId, value] of Object.entries(raw)) {
      const bar = value.indexOf('|');
      const reason = bar === -1 ? value : value.slice(0, bar);
      if (isHeldReason(reason)) held.push({ callId, reason, since: Number(value.slice(bar + 1)) || 0 });
    }
    return held;
  }
}
