/**
 * The global cap on calls in progress (DIAL_MAX_ACTIVE_CALLS), counted across every consumer process and host: each
 * call holds a lease in Redis from just before it is dialed until its terminal outcome. A lease is a member of a
 * sorted set scored by its expiry, so a holder that crashes cannot leak it:
 * - while a consumer dials, it renews the lease (every third of its time to live); a SIGKILLed consumer stops renewing
 *   and the lease lapses, unless the consumer that takes the job over renews it first (same member: no second lease);
 * - once answered, the lease lives as long as the outcome watchdog gives the agent (CALL_OUTCOME_TIMEOUT_S) plus a
 *   margin: the outcome (the agent's, or the watchdog's `failed`) releases it, the expiry only backs that up;
 * - an attempt that ends unanswered releases it at once (a call waiting for a retry is not in progress).
 * Inbound calls (and calls the agent dials itself) are counted too, never refused here: outbound calls stop at
 * DIAL_MAX_ACTIVE_CALLS − DIAL_RESERVED_INBOUND, so the reserved capacity stays free for them.
 * Every key carries the `{dialer-active}` hash tag, so the scripts run on Redis Cluster.
 */
import type { RedisClient } from './redisClient.js';
import { LuaScript, replies } from './luaScript.js';
import { MINUTE, SECOND } from './time.js';

/** How long an inbound call's lease lives without its outcome: past the agent's own outcome watchdog (max call + 5 min). */
export const INBOUND_LEASE_TTL_MS = 30 * MINUTE;
/** An answered call's lease outlives its outcome watchdog by this much (the watchdog's retries, the results worker). */
export const ANSWERED_LEASE_MARGIN_MS = 5 * MINUTE;

/** A call a lease is held for. Ids never contain ':' (idSchema), so `campaign:call` names a lease unambiguously. */
export interface LeasedCall {
  campaignId: string;
  callId: string;
}

/** What asking for a lease found: held (now or before), or full, with the cap that is and when the first lease lapses. */
export type LeaseAnswer =
  | { held: true; active: number }
  | { held: false; active: number; scope: 'global' | 'campaign'; earliestExpiryMs: number };

/** acquireActiveCall.lua's answer: `[held 1|0, active]`, plus `[scope, earliest expiry ms]` when refused. */
type AcquireReply = [held: number, active: number, scope: string | undefined, earliestExpiryMs: number | undefined];
const acquireReply = (reply: unknown): AcquireReply | undefined => {
  if (!Array.isArray(reply) || reply.length < 2) return undefined;
  const [held, active, scope, earliest]: unknown[] = reply;
  if (typeof held !== 'number' || typeof active !== 'number') return undefined;
  return [held, active, typeof scope === 'string' ? scope : undefined, earliest === undefined ? undefined : Number(earliest)];
};

const LUA_FOLDER = new URL('./lua/', import.meta.url);
/** The lease scripts: keys `[all leases, the campaign's leases]`; see each file's header for the arguments. */
const scripts = {
  acquire: new LuaScript<[all: string, campaign: string], [member: string, limit: number, campaignLimit: number, ttlMs: number], AcquireReply>(
    'acquireActiveCall',
    LUA_FOLDER,
    2,
    acquireReply,
  ),
  renew: new LuaScript<[all: string, campaign: string], [member: string, ttlMs: number], number>('renewActiveCall', LUA_FOLDER, 2, replies.integer),
};

/** Keys of the lease sets under QUEUE_PREFIX. */
export function activeCallKeys(prefix: string): { all: string; campaign(campaignId: string): string } {
  const base = `${prefix}:dialer:{dialer-active}:leases`;
  return { all: base, campaign: (campaignId) => `${base}:campaign:${campaignId}` };
}

const MICROS_PER_MS = 1000;

function member(call: LeasedCall): string {
  return `${call.campaignId}:${call.callId}`;
}

/** Leases of calls in progress (see the file's comment). Stateless: any number of processes share the sets. */
export class ActiveCallLeases {
  readonly keys: ReturnType<typeof activeCallKeys>;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = activeCallKeys(prefix);
  }

  /**
   * Takes `call`'s lease for `ttlMs` if fewer than `limit` calls are in progress overall and (with `campaignLimit`)
   * fewer than that in its campaign; a call that holds its lease already renews it whatever the counts. A limit of 0
   * means none: the call is only counted (inbound calls).
   */
  async acquire(call: LeasedCall, options: { limit: number; campaignLimit?: number; ttlMs: number }): Promise<LeaseAnswer> {
    const [held, active, scope, earliest] = await scripts.acquire.run(
      this.redis,
      [this.keys.all, this.keys.campaign(call.campaignId)],
      [member(call), options.limit, options.campaignLimit ?? 0, Math.max(1, Math.round(options.ttlMs))],
    );
    if (held === 1) return { held: true, active };
    return { held: false, active, scope: scope === 'campaign' ? 'campaign' : 'global', earliestExpiryMs: Number(earliest ?? 0) };
  }

  /** Extends a lease still held to `ttlMs` from now; false when it is gone (released, or lapsed meanwhile). */
  async renew(call: LeasedCall, ttlMs: number): Promise<boolean> {
    const renewed = await scripts.renew.run(this.redis, [this.keys.all, this.keys.campaign(call.campaignId)], [member(call), Math.max(1, Math.round(ttlMs))]);
    return renewed === 1;
  }

  /** Gives the lease back (a no-op when it is not held). */
  async release(call: LeasedCall): Promise<void> {
    await this.redis.multi().zrem(this.keys.all, member(call)).zrem(this.keys.campaign(call.campaignId), member(call)).exec();
  }

  /** Calls in progress now, overall or in one campaign (expired leases left out). */
  async count(campaignId?: string): Promise<number> {
    const key = campaignId === undefined ? this.keys.all : this.keys.campaign(campaignId);
    const [seconds, micros] = (await this.redis.time()).map(Number);
    const nowMs = (seconds ?? 0) * SECOND + Math.floor((micros ?? 0) / MICROS_PER_MS);
    return this.redis.zcount(key, `(${nowMs}`, '+inf');
  }
}
