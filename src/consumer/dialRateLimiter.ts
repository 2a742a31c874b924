import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../core/redisClient.js';
import type { DialStartWindow } from '../core/callStore.js';
import { LuaScript, replies } from '../core/luaScript.js';
import { SECOND } from '../core/time.js';

const MICROS_PER_MS = 1000;

/**
 * The longest a claimed dial start may take to reach the send: a claim (claimDial.lua, which records the start in the
 * rolling window at Redis' time) whose reply comes back later than this after it was asked is not sent, but taken back
 * and claimed again (dialAttempt.ts). Every CreateSIPParticipant thus leaves within this long of the moment its start
 * was counted, however this process or Redis stalled meanwhile.
 */
export const CLAIM_TO_SEND_MAX_MS = 15;

/**
 * The rolling window of starts is this much longer than a second. DIAL_CPS is a limit where the carrier counts, on
 * the far side of the request: N+1 starts counted at least 1 s + this margin apart reach it at least 1 s apart as long
 * as their delays from count to arrival differ by less than the margin. The delay is 0 … CLAIM_TO_SEND_MAX_MS up to
 * the send (see above), then the HTTP client's path to the socket (the SIP client's token is signed ahead of time,
 * livekitClients.ts, and the connection is warm from the dispatch just before) and the network: the rest of the
 * margin. It costs the rate 1 − 1 s / (1 s + margin) of the limit (2.4 %).
 */
export const WINDOW_SAFETY_MARGIN_MS = 25;

/**
 * Pacing slots are spread this much wider than the window needs: a start counted a little later than its slot (timer
 * lateness, the claim's round trip) then still finds the window open, instead of waiting for the start one window
 * earlier to leave it and pushing every later start back by the difference. Costs 1 % of the limit.
 */
export const PACING_SLACK_MS = 10;

/**
 * Claims (claimDial.lua) one consumer process has in flight at once; further ones wait their turn, in the order they
 * asked. A claim is only good if its reply comes back within CLAIM_TO_SEND_MAX_MS; on a starved host every call whose
 * slot has come would otherwise claim at once, and each stale claim is taken back and asked again, so the claims
 * themselves slow every round trip further: bench:cps --hog at 200 CPS on a loaded machine saw 49,771 stale claims
 * for 212 dials in a minute. Four at once carry 200 CPS while a round trip stays under 20 ms.
 */
export const MAX_CLAIMS_IN_FLIGHT = 4;

/**
 * Turns to wait for room in the rolling window, `max` at once, passed on in order: a call of this process that met a
 * full window (claimDial came back `window_full`) takes one and keeps it until its claim is through; the process's
 * other calls whose slots come meanwhile queue for a turn instead of asking. A full window is full for every caller,
 * and each `window_full` reply names the moment the oldest start leaves it: without turns every waiting call woke at
 * that same moment and claimed, one took the room and the others asked again, so m calls bunched behind a late start
 * cost about m²/2 claims (bench:cps at 200 CPS: about 4 claims per dial). More than one turn (MAX_CLAIMS_IN_FLIGHT)
 * so that, once the window has room again, claims still overlap their round trips: with one, a starved process
 * claimed one call per round trip. Only the global window's room is queued for; a campaign's own window is not.
 */
export class WindowTurn {
  private holders = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  /** True while some call holds a turn (and so waits for room in the window). */
  get taken(): boolean {
    return this.holders > 0;
  }

  /**
   * Takes a turn: `at_once` when one is free, else `after_wait`, in order behind the calls waiting for one; `stopped`
   * (no turn) when `signal` aborted first.
   */
  async take(signal?: AbortSignal): Promise<'at_once' | 'after_wait' | 'stopped'> {
    if (this.holders < this.max) {
      this.holders += 1;
      return 'at_once';
    }
    if (signal?.aborted) return 'stopped';
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const at = this.waiting.indexOf(given);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve('stopped');
      };
      const given = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve('after_wait');
      };
      this.waiting.push(given);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Passes a turn straight to the next waiting call, or frees it. Only a holder calls it, once per turn taken. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.holders -= 1;
  }
}

/**
 * At most `max` tasks running at once; the others start in the order they came as running ones end: the same
 * turn-passing as WindowTurn, around a task.
 */
export class InFlightLimit {
  private readonly turns: WindowTurn;

  constructor(readonly max: number) {
    this.turns = new WindowTurn(max);
  }

  /** Runs `task` once fewer than `max` others run; its result or error is passed on. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.turns.take();
    try {
      return await task();
    } finally {
      this.turns.release();
    }
  }
}

/** reserveDialSlot.lua: the next free pacing slot, `[slot µs, wait µs]` (Redis' clock). */
const reserveDialSlot = new LuaScript<[next: string], [intervalUs: number], [number, number]>(
  'reserveDialSlot',
  new URL('./lua/', import.meta.url),
  1,
  replies.twoNumbers,
);

/** How many starts a rolling window may hold, and how long that window is (fractional limits widen it). */
export function startWindow(cps: number): { limit: number; windowMs: number } {
  if (cps >= 1) return { limit: Math.floor(cps), windowMs: SECOND + WINDOW_SAFETY_MARGIN_MS };
  return { limit: 1, windowMs: SECOND / cps + WINDOW_SAFETY_MARGIN_MS };
}

/**
 * Spacing between dial starts for a calls-per-second limit: N starts per window, evenly spread, so any rolling
 * second holds at most N. A fractional limit above one rounds down (2.5 → 2 per second: 3 would break a
 * rolling second); below one it widens the spacing (0.5 → one start per 2 s).
 */
export function startIntervalMs(cps: number): number {
  const { limit, windowMs } = startWindow(cps);
  return (windowMs + PACING_SLACK_MS) / limit;
}

/** A campaign's own rate (its cps, or where its ramp stands) and the log its dial starts are counted in. */
export interface CampaignDialRate {
  logKey: string;
  cps: number;
}

/**
 * The global dial-start limiter (DIAL_CPS), shared by every consumer process through Redis. Two parts:
 * - pacing: a GCRA slot per start (reserveDialSlot.lua), evenly spaced, so waiting calls do not race each other and
 *   carriers see no bursts;
 * - the hard limit: claimDial.lua counts each start in a sliding-window log at the moment it is claimed, right before
 *   its CreateSIPParticipant, and refuses it while the window holds the limit. Unlike BullMQ's fixed-window limiter
 *   it is never exceeded in any rolling second, at the send and, within WINDOW_SAFETY_MARGIN_MS of jitter, where the
 *   carrier counts.
 */
export class DialRateLimiter {
  /** This process's claims in flight (MAX_CLAIMS_IN_FLIGHT): dialAttempt asks each claim through it. */
  readonly claims = new InFlightLimit(MAX_CLAIMS_IN_FLIGHT);
  /** Held by this process's calls waiting for room in the rolling window; its other calls queue for one (WindowTurn). */
  readonly windowTurn = new WindowTurn(MAX_CLAIMS_IN_FLIGHT);

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly cps: number,
  ) {}

  /** Reserves the next free pacing slot; returns when it is (ms since the epoch, Redis' clock) and how long to wait. */
  async reserve(): Promise<{ slotAtMs: number; waitMs: number }> {
    const intervalUs = Math.ceil(startIntervalMs(this.cps) * MICROS_PER_MS);
    const [slot, wait] = await reserveDialSlot.run(this.redis, [`${this.key}:next`], [intervalUs]);
    return { slotAtMs: slot / MICROS_PER_MS, waitMs: wait / MICROS_PER_MS };
  }

  /**
   * Takes a start counted in `window` (by claimDial) out of it again: its request was never sent, because its claim
   * came back too late (dialAttempt.ts). Safe at any moment: the window must hold every start that was sent, and a
   * start that was not sent never is. Kept, it would cost the limit a start each time, and on a starved host stale
   * claims would eat the window faster than it empties.
   */
  async giveBack(window: DialStartWindow): Promise<void> {
    await this.redis.zrem(window.logKey, window.member);
    if (window.campaign) await this.redis.zrem(window.campaign.logKey, window.member);
  }

  /**
   * The rolling window a start is checked against, for claimDial.lua (which records the start together with the
   * claim's other checks): the log key, the limit, the window and how long entries are kept (µs), a fresh member, and
   * the longest the claim may take to reach the send (ms). With `campaign`, the claim also checks and counts the
   * call's campaign's own rate, on the campaign's log, with the same margin as the global limit.
   */
  startWindow(campaign?: CampaignDialRate): DialStartWindow {
    const { limit, windowMs } = startWindow(this.cps);
    const windowUs = Math.ceil(windowMs * MICROS_PER_MS);
    const own = campaign ? startWindow(campaign.cps) : undefined;
    return {
      logKey: `${this.key}:log`,
      limit,
      windowUs,
      keepUs: windowUs,
      member: randomUUID(),
      marginMs: CLAIM_TO_SEND_MAX_MS,
      ...(campaign && own ? { campaign: { logKey: campaign.logKey, limit: own.limit, windowUs: Math.ceil(own.windowMs * MICROS_PER_MS) } } : {}),
    };
  }
}
