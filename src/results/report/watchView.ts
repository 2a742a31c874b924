/**
 * `dialer report --campaign ID --watch` (issue 12 §5): a live view of a running campaign in the terminal, redrawn
 * about once a second: a progress bar, call rates, calls ringing and in progress, and the calls held back with why.
 *
 * Reading it costs little per refresh: the counters are one hash; call states are read once per call and then only
 * for calls not ended yet (an ended call never moves again). "Why held" is what the consumer recorded for each call
 * it holds back (src/core/heldCalls.ts: one hash per campaign, read whole), counted by reason; beside it the campaign's
 * own state (canceled, past its end, LiveKit backed off), calls waiting to retry, and calls due later in the delayed
 * set of BullMQ's `calls` queue (a job id is its call id).
 */
import { callShardsOf } from '../../core/callShards.js';
import type { RedisClient } from '../../core/redisClient.js';
import { DateTime } from 'luxon';
import { campaignWindow } from '../../campaigns/campaignSchema.js';
import type { CampaignStore, CampaignView } from '../../campaigns/campaignStore.js';
import { ActiveCallLeases } from '../../core/activeCallLeases.js';
import type { CallStore, CampaignCounters } from '../../core/callStore.js';
import { HeldCalls, type HeldReason as RecordedReason } from '../../core/heldCalls.js';
import { nextWindowOpening } from '../../core/callWindow.js';
import { readOutboundCap } from '../../core/outboundCap.js';
import { OUTCOMES, type CallState, type Outcome } from '../../core/outcomes.js';
import { CALLS_QUEUE } from '../../core/queues.js';
import { MINUTE, SECOND, sleep, type Clock } from '../../core/time.js';

/** How often the view is redrawn. */
export const WATCH_REFRESH_MS = SECOND;
/** Records read per pipeline round trip. */
const STATE_READ_BATCH = 1000;
/** BullMQ writes a delayed job's due time × 0x1000 (plus a counter) as its score in `<queue>:delayed` (getDelayedScore.lua). */
const DELAYED_SCORE_FACTOR = 0x1000;
/** Dials sent and calls ended are counted over this last span, by the times on their records. */
const RATE_WINDOW_MS = MINUTE;
/** Width of the progress bar, in characters. */
const BAR_WIDTH = 40;

/** Why calls of the campaign are not ringing now, with how many when that is known. */
export interface HeldReason {
  reason: string;
  calls?: number;
}

/** What one refresh shows. */
export interface WatchSnapshot {
  campaignId: string;
  /** Epoch ms of the reading. */
  at: number;
  counters: CampaignCounters;
  /**
   * Dials sent and calls ended within the last minute before `at`, by the times their records give (`dialSentAt`,
   * `endedAt`): not extrapolated from the watch's own span. Ended calls include those ended without a dial (canceled,
   * expired, skipped).
   */
  lastMinute: { dialed: number; ended: number };
  /** Calls not ended, by state (from their records). */
  states: Record<Exclude<CallState, 'terminal'>, number>;
  /**
   * Of the `dialing` calls, those whose dial was sent (the record's `dialSentAttempt` is its latest attempt): ringing.
   * The others wait for their DIAL_CPS slot, or are about to dial.
   */
  ringing: number;
  /**
   * Of the `waiting_retry` calls, those whose latest attempt was never sent (a draining consumer gave its slot back,
   * LiveKit failed before the dial): back in the queue undialed, not waiting to retry after a call that rang.
   */
  returnedUndialed: number;
  /** Queued calls whose job waits in BullMQ's delayed set (a start time, a retry delay, a gate's wait). */
  delayed: number;
  /** Calls of the campaign holding a lease of a call in progress (ringing or connected). */
  activeLeases: number;
  /**
   * All calls in progress and the outbound cap the consumers dial under (DIAL_MAX_ACTIVE_CALLS less
   * DIAL_RESERVED_INBOUND, as the last consumer to start published it: src/core/outboundCap.ts); undefined when they
   * have no cap, or no consumer has published one.
   */
  global: { active: number; cap: number } | undefined;
  campaign: CampaignView | undefined;
  paused: boolean;
  held: HeldReason[];
}

/** Settings the view needs (from DialerConfig). The outbound cap is not one: the consumers publish theirs. */
export interface WatchSettings {
  prefix: string;
  timeZone: string;
}

/** Reads snapshots of one campaign; remembers which calls ended so it does not read them again. */
export class WatchReader {
  private readonly ended = new Set<string>();
  private readonly leases: ActiveCallLeases;
  private readonly heldCalls: HeldCalls;
  private known = 0;
  private readonly ids: string[] = [];
  /**
   * When each attempt's dial went out (epoch ms), keyed `<call id>#<attempt>`, kept while within RATE_WINDOW_MS. One
   * entry per attempt: a claim taken back and made again (its reply came too late to send, dialAttempt.ts) gives the
   * attempt a new `dialSentAt` but is still one dial (counted once, at its latest time).
   */
  private readonly dialTimes = new Map<string, number>();
  /** Times (epoch ms) of calls ended, kept while they are within RATE_WINDOW_MS. */
  private endTimes: number[] = [];

  constructor(
    private readonly redis: RedisClient,
    private readonly store: CallStore,
    private readonly campaigns: CampaignStore,
    private readonly campaignId: string,
    private readonly settings: WatchSettings,
    private readonly clock: Clock,
  ) {
    this.leases = new ActiveCallLeases(redis, settings.prefix);
    this.heldCalls = new HeldCalls(redis, settings.prefix, clock);
  }

  /** One reading (see WatchSnapshot). */
  async read(): Promise<WatchSnapshot> {
    const id = this.campaignId;
    const keys = this.store.keys;
    const fresh = await this.redis.lrange(keys.campaignCalls(id), this.known, -1);
    this.ids.push(...fresh);
    this.known += fresh.length;
    const [counters, campaign, paused, activeLeases, globalActive, published, recordedHolds, backoffMs] = await Promise.all([
      this.store.counters(id),
      this.campaigns.get(id).then((doc) => (doc ? this.campaigns.show(id) : undefined)),
      this.store.isPaused(id),
      this.leases.count(id),
      this.leases.count(),
      readOutboundCap(this.redis, this.settings.prefix),
      this.heldCalls.list(id),
      this.redis.pttl(keys.platformBackoff()),
    ]);
    const states: WatchSnapshot['states'] = { queued: 0, dialing: 0, waiting_retry: 0, in_call: 0 };
    const open = this.ids.filter((callId) => !this.ended.has(callId));
    // the campaign's call shard's queue (QUEUE_PREFIX's own with one shard): its records share that slot
    const delayedKey = `${callShardsOf(this.settings.prefix).prefixOf(id)}:${CALLS_QUEUE}:delayed`;
    const now = this.clock.now();
    let delayed = 0;
    let dueLater = 0;
    let ringing = 0;
    let returnedUndialed = 0;
    const recordedIds = new Set(recordedHolds.map((h) => h.callId));
    for (let i = 0; i < open.length; i += STATE_READ_BATCH) {
      const batch = open.slice(i, i + STATE_READ_BATCH);
      const pipeline = this.redis.pipeline();
      for (const callId of batch) {
        pipeline.hmget(keys.callRecord(id, callId), 'state', 'attempts', 'dialSentAttempt', 'dialSentAt', 'endedAt', 'updatedAt');
        pipeline.zscore(delayedKey, callId);
      }
      const replies = (await pipeline.exec()) ?? [];
      batch.forEach((callId, k) => {
        const [stateErr, fields] = replies[2 * k] ?? [];
        const [scoreErr, score] = replies[2 * k + 1] ?? [];
        if (stateErr) throw stateErr;
        if (scoreErr) throw scoreErr;
        const [state, attempts, sentAttempt, sentAt, endedAt, updatedAt] = Array.isArray(fields) ? (fields as (string | null)[]) : [];
        const dialedAt = Number(sentAt);
        if (sentAt && dialedAt > 0 && sentAttempt) this.dialTimes.set(`${callId}#${sentAttempt}`, dialedAt);
        // the latest attempt's dial went out (claimDial marks it before its CreateSIPParticipant)
        const sent = sentAttempt !== null && sentAttempt !== undefined && sentAttempt === attempts;
        // a record gone (expired, purged) is over as far as this view goes
        if (state === null || state === undefined || state === 'terminal') {
          this.ended.add(callId);
          // when it ended, as its record says (records from before endedAt was kept: their last update)
          const endMs = Number(endedAt ?? updatedAt);
          if (state === 'terminal' && endMs > 0) this.endTimes.push(endMs);
          return;
        }
        if (typeof state === 'string' && state in states) states[state as keyof typeof states] += 1;
        if (state === 'dialing' && sent) ringing += 1;
        if (state === 'waiting_retry' && !sent) returnedUndialed += 1;
        if (state === 'queued' && typeof score === 'string') {
          delayed += 1;
          // due later and held by no gate: waiting for the start time it was given
          if (Math.floor(Number(score) / DELAYED_SCORE_FACTOR) > now && !recordedIds.has(callId)) dueLater += 1;
        }
      });
    }
    const since = now - RATE_WINDOW_MS;
    for (const [key, t] of this.dialTimes) if (t <= since) this.dialTimes.delete(key);
    this.endTimes = this.endTimes.filter((t) => t > since);
    const dialed = [...this.dialTimes.values()].filter((t) => t <= now).length;
    const lastMinute = { dialed, ended: this.endTimes.filter((t) => t <= now).length };
    const global = published.kind === 'cap' ? { active: globalActive, cap: published.cap } : undefined;
    // a hold recorded for a call that has ended since (a crash between its end and the clearing) is not shown
    const recorded = new Map<RecordedReason, number>();
    for (const h of recordedHolds) if (!this.ended.has(h.callId)) recorded.set(h.reason, (recorded.get(h.reason) ?? 0) + 1);
    const held = heldReasons({ campaign, activeLeases, recorded, states, returnedUndialed, dueLater, global, backoffMs, now, timeZone: this.settings.timeZone });
    return { campaignId: id, at: now, counters, lastMinute, states, ringing, returnedUndialed, delayed, activeLeases, global, campaign, paused, held };
  }
}

/** Why calls wait: the campaign's own state, then the reasons the consumer recorded per call, in the order its gates check. */
function heldReasons(s: {
  campaign: CampaignView | undefined;
  activeLeases: number;
  recorded: ReadonlyMap<RecordedReason, number>;
  states: WatchSnapshot['states'];
  returnedUndialed: number;
  /** Calls due later in the delayed set that no gate holds (their own start time). */
  dueLater: number;
  global: WatchSnapshot['global'];
  backoffMs: number;
  now: number;
  timeZone: string;
}): HeldReason[] {
  const held: HeldReason[] = [];
  const when = (ms: number) => DateTime.fromMillis(ms, { zone: s.timeZone }).toFormat('LL-dd HH:mm');
  const status = s.campaign?.status;
  if (status === 'canceled' || status === 'archived') held.push({ reason: `campaign ${status}: its calls end without ringing` });
  if (status === 'expired') held.push({ reason: 'campaign past its end date: calls not placed end expired' });
  if (s.backoffMs > 0) held.push({ reason: `LiveKit failing: every dial backed off for ${Math.ceil(s.backoffMs / SECOND)} s` });
  const window = s.campaign ? campaignWindow(s.campaign, s.timeZone) : undefined;
  const opensAt = window ? nextWindowOpening(window, s.now) : undefined;
  // both caps may be full at once: each reason names the other then
  const campaignCap = s.campaign?.max_active_calls;
  const campaignFull = campaignCap !== undefined && s.activeLeases >= campaignCap;
  const globalFull = s.global !== undefined && s.global.active >= s.global.cap;
  const allLines = s.global ? `all ${s.global.cap} outbound lines in use (DIAL_MAX_ACTIVE_CALLS)` : 'all outbound lines in use (DIAL_MAX_ACTIVE_CALLS)';
  const label: Record<RecordedReason, string> = {
    campaign_start: s.campaign?.starts_at ? `campaign starts at ${when(Date.parse(s.campaign.starts_at))}` : 'campaign not started yet',
    paused: 'campaign paused (dialer resume releases them)',
    window: opensAt !== undefined ? `outside the calling window; opens ${when(opensAt)}` : 'outside the calling window',
    predial_error: 'the pre-dial check fails: asked again every 30 s',
    backoff: 'LiveKit failing: dials backed off',
    campaign_rate: `campaign at its own call rate${s.campaign?.cps !== undefined ? ` (${s.campaign.cps} calls/s)` : ''}`,
    campaign_cap: `campaign at its cap of ${campaignCap ?? '?'} calls in progress${globalFull ? `, and ${allLines} too` : ''}`,
    active_calls: `${allLines}${campaignFull ? `, and the campaign at its cap of ${campaignCap ?? '?'} calls in progress too` : ''}`,
    cps: 'waiting for a dial slot (DIAL_CPS)',
  };
  for (const [reason, text] of Object.entries(label) as [RecordedReason, string][]) {
    const calls = s.recorded.get(reason);
    if (calls) held.push({ reason: text, calls });
  }
  const retrying = s.states.waiting_retry - s.returnedUndialed;
  if (retrying > 0) held.push({ reason: 'waiting to retry after busy / no answer / failure', calls: retrying });
  if (s.returnedUndialed > 0) held.push({ reason: 'back in the queue undialed (a consumer stopped, or LiveKit failed, before the dial went out)', calls: s.returnedUndialed });
  if (s.dueLater > 0) held.push({ reason: 'waiting for their start time (delayed)', calls: s.dueLater });
  return held;
}

/** Whether there is nothing left to watch: every call ended (and there was one), or the campaign will dial no more. */
export function isDone(s: WatchSnapshot): boolean {
  const pending = s.counters.total - s.counters.terminal;
  if (pending > 0) return false;
  const status = s.campaign?.status;
  return s.counters.total > 0 || status === 'canceled' || status === 'archived' || status === 'expired';
}

/** One frame, as lines (no escape codes: the caller decides how to draw them). */
export function renderFrame(s: WatchSnapshot, timeZone: string): string[] {
  const { total, terminal, byOutcome } = s.counters;
  const pending = Math.max(0, total - terminal);
  const share = total > 0 ? terminal / total : 0;
  const filled = Math.round(share * BAR_WIDTH);
  const status = s.campaign?.status ?? (s.paused ? 'paused' : pending > 0 ? 'running' : 'done');
  const lines = [
    `campaign ${s.campaignId} · ${status} · ${DateTime.fromMillis(s.at, { zone: timeZone }).toFormat('HH:mm:ss')}`,
    `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${terminal}/${total} ended (${(100 * share).toFixed(1)} %), ${pending} pending`,
  ];
  lines.push(`last minute: ${s.lastMinute.dialed} dials sent, ${s.lastMinute.ended} calls ended`);
  const cap = s.campaign?.max_active_calls;
  lines.push(
    `now: ${s.ringing} ringing, ${s.states.dialing - s.ringing} waiting for a dial slot, ${s.states.in_call} in progress, ${s.states.queued} queued, ` +
      `${s.states.waiting_retry - s.returnedUndialed} waiting to retry${s.returnedUndialed > 0 ? `, ${s.returnedUndialed} back in the queue undialed` : ''}` +
      ` · lines ${s.activeLeases}${cap !== undefined ? `/${cap}` : ''}${s.global ? ` (all campaigns ${s.global.active}/${s.global.cap})` : ''}`,
  );
  const outcomes = OUTCOMES.filter((o: Outcome) => (byOutcome[o] ?? 0) > 0).map((o) => `${o} ${byOutcome[o]}`);
  lines.push(`outcomes: ${outcomes.length ? outcomes.join(', ') : 'none yet'}`);
  if (s.held.length === 0) lines.push('held: none');
  else for (const h of s.held) lines.push(`held: ${h.reason}${h.calls !== undefined ? ` (${h.calls} ${h.calls === 1 ? 'call' : 'calls'})` : ''}`);
  return lines;
}

/** Where frames go: a terminal (redrawn in place) or anything else (frames printed one after another). */
export interface WatchOutput {
  isTTY: boolean;
  write(text: string): void;
}

const CSI = '\u001b[';
const HIDE_CURSOR = `${CSI}?25l`;
const SHOW_CURSOR = `${CSI}?25h`;
const HOME_AND_CLEAR = `${CSI}H${CSI}2J`;

/**
 * Redraws the view every `refreshMs` until the campaign is done (isDone) or `signal` aborts (Ctrl-C), then leaves
 * the terminal as it found it (cursor shown, last frame left on screen). On a terminal each frame replaces the last;
 * elsewhere each frame is printed as lines followed by a blank line. Returns the last snapshot. The loop is bounded
 * by those two exits; `maxFrames` bounds it further (tests).
 */
export async function runWatch(options: {
  read: () => Promise<WatchSnapshot>;
  output: WatchOutput;
  signal: AbortSignal;
  timeZone: string;
  refreshMs?: number;
  maxFrames?: number;
}): Promise<WatchSnapshot | undefined> {
  const { output, signal } = options;
  const refreshMs = options.refreshMs ?? WATCH_REFRESH_MS;
  let last: WatchSnapshot | undefined;
  if (output.isTTY) output.write(HIDE_CURSOR);
  try {
    for (let frame = 0; frame < (options.maxFrames ?? Number.POSITIVE_INFINITY) && !signal.aborted; frame++) {
      last = await options.read();
      const lines = renderFrame(last, options.timeZone);
      output.write(output.isTTY ? `${HOME_AND_CLEAR}${lines.join('\n')}\n` : `${lines.join('\n')}\n\n`);
      if (isDone(last)) break;
      await sleep(refreshMs, signal).catch(() => undefined); // an abort ends the wait; the loop condition ends the run
    }
  } finally {
    if (output.isTTY) output.write(SHOW_CURSOR);
  }
  return last;
}
