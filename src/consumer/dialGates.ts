/**
 * What stands between a call and its next ring, checked in this order before every attempt: its expiry, its agent
 * profile, the do-not-call list, a paused campaign, its calling window, and the pre-dial eligibility check. The
 * first gate that applies decides: the call ends (`expired`, `failed`, `skipped`), waits (no attempt spent), or rings.
 */
import { CANCEL_REASON } from '../producer/cancelCalls.js';
import { hasProfile, type ProfileCatalog } from '../agent/profiles.js';
import type { ActiveCallLeases, LeasedCall } from '../core/activeCallLeases.js';
import { campaignStatus, campaignWindow, type Campaign } from '../campaigns/campaignSchema.js';
import type { Logger } from '../core/logger.js';
import type { CallStore } from '../core/callStore.js';
import { describeWindow, nextWindowOpening, type CallWindow } from '../core/callWindow.js';
import type { CallJob } from '../core/queues.js';
import { MINUTE, SECOND, type Clock } from '../core/time.js';
import { askPredialCheck } from './predialCheck.js';

/** Why a call on the do-not-call list ends as `skipped`. */
export const DO_NOT_CALL_REASON = 'number is on the do-not-call list';
/** A paused campaign's call looks again this often (resuming releases it at once; this is the fallback). */
export const PAUSED_RECHECK_MS = MINUTE;
/** A call whose pre-dial check failed (unreachable, not 2xx, bad answer) asks again after this long. */
export const PREDIAL_RETRY_MS = 30 * SECOND;

export type GateDecision =
  | { kind: 'ring' }
  | { kind: 'end'; outcome: 'expired' | 'skipped' | 'failed' | 'canceled'; reason: string | undefined; log: string }
  | {
      kind: 'wait';
      delayMs: number;
      /** Which gate holds the call back (a paused campaign's calls are released early when it resumes). */
      gate: 'paused' | 'window' | 'predial_error' | 'campaign_start' | 'campaign_rate' | 'campaign_cap';
      log: string;
      details?: Record<string, unknown>;
      /** A failing dependency (the pre-dial check) is worth a warning; a closed window or a pause is not. */
      warn?: boolean;
    };

export interface DialGateDeps {
  store: Pick<CallStore, 'isDoNotCall' | 'isPaused' | 'isCancelRequested'>;
  clock: Clock;
  /** DIAL_CALL_WINDOW, for calls that carry no window. */
  defaultWindow: CallWindow | undefined;
  predialCheck: { url: string; secret: string | undefined } | undefined;
  /**
   * The agent's profile catalog (loadProfileCatalog: AGENT_PROFILES_FILE, as the agent reads it). A call naming a
   * profile it lacks (a job another service pushed onto the queue) ends `failed` without ringing: the agent would
   * only hang up on the callee. Undefined: profile names are not checked.
   */
  profiles?: ProfileCatalog;
}

/** How the consumer reads the agent's profile catalog for `profiles` (the agent's own reader). */
export { loadProfileCatalog } from '../agent/profiles.js';

/** Why a call naming a profile the agent lacks ends as `failed`. */
export function unknownProfileReason(name: string): string {
  return `unknown agent profile "${name}"`;
}

/** Decides whether attempt `attempt` of `call` may ring now. */
export async function checkDialGates(call: CallJob, attempt: number, deps: DialGateDeps): Promise<GateDecision> {
  const now = deps.clock.now();
  if (await deps.store.isCancelRequested(call.campaignId, call.callId)) {
    // canceled while an earlier attempt rang (cancelCalls): that attempt ended before the cancel was seen
    return { kind: 'end', outcome: 'canceled', reason: CANCEL_REASON, log: 'canceled by an operator while an attempt rang; not dialing again' };
  }
  if (call.expiresAt !== undefined && now > call.expiresAt) {
    const expiry = new Date(call.expiresAt).toISOString();
    const reason = attempt > 1 ? `it expired at ${expiry}, before attempt ${attempt} could be dialed` : `it expired at ${expiry}, before it could be dialed`;
    return { kind: 'end', outcome: 'expired', reason, log: `${reason}; not dialing` };
  }
  if (deps.profiles && call.agentProfile !== undefined && !hasProfile(deps.profiles, call.agentProfile)) {
    const reason = unknownProfileReason(call.agentProfile);
    return { kind: 'end', outcome: 'failed', reason, log: `${reason}; not dialing` };
  }
  if (await deps.store.isDoNotCall(call.phoneNumber)) {
    return { kind: 'end', outcome: 'skipped', reason: DO_NOT_CALL_REASON, log: 'number is on the do-not-call list; not dialing' };
  }
  if (await deps.store.isPaused(call.campaignId)) {
    return { kind: 'wait', delayMs: PAUSED_RECHECK_MS, gate: 'paused', log: 'campaign paused; the call waits for it to resume' };
  }

  const window = call.callWindow ?? deps.defaultWindow;
  const opensAt = window ? nextWindowOpening(window, now) : undefined;
  if (window && opensAt !== undefined) {
    if (call.expiresAt !== undefined && opensAt > call.expiresAt) {
      const reason = `its calling window (${describeWindow(window)}) opens only after it expires`;
      return { kind: 'end', outcome: 'expired', reason, log: reason };
    }
    return {
      kind: 'wait',
      delayMs: opensAt - now,
      gate: 'window',
      log: 'outside the calling window; the call waits for it to open',
      details: { window: describeWindow(window), opensAt: new Date(opensAt).toISOString() },
    };
  }

  if (deps.predialCheck) {
    const decision = await askPredialCheck(deps.predialCheck, call, attempt, deps.clock);
    if (decision.kind === 'skip') return { kind: 'end', outcome: 'skipped', reason: decision.reason, log: 'not eligible to be called; not dialing' };
    if (decision.kind === 'error') {
      // Fail closed: a call that may no longer be wanted waits for the check rather than ringing.
      return {
        kind: 'wait',
        delayMs: PREDIAL_RETRY_MS,
        gate: 'predial_error',
        log: 'pre-dial check failed; the call waits and asks again',
        details: { err: decision.error },
        warn: true,
      };
    }
  }
  return { kind: 'ring' };
}

/** A call waiting for a free lease (DIAL_MAX_ACTIVE_CALLS) asks again about this often (jittered ±50 %). */
export const ACTIVE_LEASE_POLL_MS = 250;
/**
 * A call waits this long at most for a lease inside its job (keeping its worker slot: nothing could be dialed anyway);
 * then the job goes back to wait briefly, so a long-full cap never pins a job for good.
 */
export const ACTIVE_LEASE_MAX_WAIT_MS = 30 * SECOND;
/** A dialing call's lease lives at least this many DIAL_LOCK_DURATION_MS: past the takeover of a crashed consumer's job. */
export const ACTIVE_LEASE_LOCK_DURATIONS = 3;
/** Slack past the ringing timeout before an orphaned ringing call's lease lapses (LiveKit's ring-out, a late takeover). */
export const ACTIVE_LEASE_RING_GRACE_MS = 5 * SECOND;

/**
 * How long a dialing call's lease lives without renewal (ms). A consumer killed while its call rings leaves the phone
 * ringing in LiveKit for up to DIAL_RINGING_TIMEOUT_S: the lease outlives that, plus the time another consumer takes to
 * pick the job up (about 1.5 lock durations) and renew it, so the capacity is not handed to another call meanwhile.
 */
export function dialingLeaseTtlMs(lockDurationMs: number, ringingTimeoutS: number): number {
  return Math.max(ACTIVE_LEASE_LOCK_DURATIONS * lockDurationMs, ringingTimeoutS * SECOND + 2 * lockDurationMs + ACTIVE_LEASE_RING_GRACE_MS);
}

export interface ActiveCallGateDeps {
  leases: ActiveCallLeases;
  /** Outbound calls in progress allowed overall: DIAL_MAX_ACTIVE_CALLS − DIAL_RESERVED_INBOUND (0: no global cap). */
  limit: number;
  /** The call's campaign's own cap on calls in progress, if any. */
  campaignLimit?: number;
  /** The lease's time to live while dialing (renewed by keepLeaseAlive). */
  ttlMs: number;
  clock: Clock;
  random: () => number;
  maxWaitMs?: number;
}

/**
 * Waiting for a lease before the dial: `held` (dial now), `campaign_full` (the campaign's own cap is reached: the job
 * should wait outside its worker slot, as other campaigns' calls may go), `timed_out` (the global cap stayed full for
 * ACTIVE_LEASE_MAX_WAIT_MS), `stopped` (`signal` aborted: draining, or the job's lock lost). No attempt is spent.
 */
export type LeaseWait =
  | { kind: 'held'; waited: boolean }
  | { kind: 'campaign_full'; active: number }
  | { kind: 'timed_out'; active: number }
  | { kind: 'stopped' };

/**
 * Takes the call's lease of a call in progress, waiting in place while the global cap (DIAL_MAX_ACTIVE_CALLS less the
 * inbound reserve) is full. `onFull` is told once, the first time the cap is found full.
 */
export async function waitForActiveCallLease(
  call: LeasedCall,
  deps: ActiveCallGateDeps,
  signal: AbortSignal | undefined,
  onFull?: (active: number) => void,
): Promise<LeaseWait> {
  const deadline = deps.clock.now() + (deps.maxWaitMs ?? ACTIVE_LEASE_MAX_WAIT_MS);
  const maxPolls = Math.ceil((deps.maxWaitMs ?? ACTIVE_LEASE_MAX_WAIT_MS) / (ACTIVE_LEASE_POLL_MS / 2)) + 1;
  let waited = false;
  for (let poll = 0; poll < maxPolls; poll += 1) {
    if (signal?.aborted) return { kind: 'stopped' };
    const answer = await deps.leases.acquire(call, { limit: deps.limit, campaignLimit: deps.campaignLimit, ttlMs: deps.ttlMs });
    if (answer.held) return { kind: 'held', waited };
    if (answer.scope === 'campaign') return { kind: 'campaign_full', active: answer.active };
    if (!waited) onFull?.(answer.active);
    waited = true;
    if (deps.clock.now() >= deadline) return { kind: 'timed_out', active: answer.active };
    const pauseMs = Math.min(ACTIVE_LEASE_POLL_MS * (0.5 + deps.random()), Math.max(1, answer.earliestExpiryMs));
    try {
      await deps.clock.sleep(pauseMs, signal);
    } catch {
      return { kind: 'stopped' };
    }
  }
  return { kind: 'timed_out', active: deps.limit };
}

/**
 * Renews a dialing call's lease every third of its time to live until the returned function is called. A renewal that
 * finds the lease gone (this process stalled past it) is logged once; failures are logged, never thrown.
 */
export function keepLeaseAlive(leases: ActiveCallLeases, call: LeasedCall, ttlMs: number, log: Logger): () => void {
  let warned = false;
  const timer = setInterval(() => {
    leases.renew(call, ttlMs).then(
      (renewed) => {
        if (!renewed && !warned) {
          warned = true;
          log.warn({ ttlMs }, 'the call lost its lease of a call in progress (this process stalled past it); the cap may be passed by one');
        }
      },
      (err: unknown) => log.error({ err }, 'could not renew the lease of a call in progress'),
    );
  }, Math.max(1, Math.floor(ttlMs / 3)));
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * What a campaign object decides for its call before the other gates: a canceled or archived campaign's call ends
 * `skipped`; past the campaign's end it ends `expired`; before its start it waits. Otherwise the call rings under the
 * campaign's settings: its window and agent profile where the call names none (`call` comes back with them filled in).
 * An implicit campaign (no document) changes nothing.
 */
export function checkCampaignGate(call: CallJob, campaign: Campaign | undefined, now: number, timeZone: string): { decision: GateDecision; call: CallJob } {
  if (!campaign) return { decision: { kind: 'ring' }, call };
  const status = campaignStatus(campaign, now);
  if (status === 'canceled' || status === 'archived') {
    const reason = `campaign ${campaign.id} is ${status}`;
    return { decision: { kind: 'end', outcome: 'skipped', reason, log: `${reason}; not dialing` }, call };
  }
  if (status === 'expired') {
    const reason = `campaign ${campaign.id} ended at ${campaign.ends_at ?? ''}`;
    return { decision: { kind: 'end', outcome: 'expired', reason, log: `${reason}; not dialing` }, call };
  }
  if (status === 'scheduled' && campaign.starts_at) {
    const startsAt = Date.parse(campaign.starts_at);
    return {
      decision: { kind: 'wait', delayMs: startsAt - now, gate: 'campaign_start', log: 'campaign not started yet; the call waits for its start', details: { startsAt: campaign.starts_at } },
      call,
    };
  }
  const window = call.callWindow ?? campaignWindow(campaign, timeZone);
  const agentProfile = call.agentProfile ?? campaign.agent_profile;
  return {
    decision: { kind: 'ring' },
    call: { ...call, ...(window ? { callWindow: window } : {}), ...(agentProfile !== undefined ? { agentProfile } : {}) },
  };
}
