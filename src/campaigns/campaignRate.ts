/**
 * A campaign's own call rate (its `cps`, or its ramp), inside the global DIAL_CPS, held in two places:
 * - its gate (`take`): a sliding-window log per campaign, counted when a call passes the gate, before it takes its
 *   lease and its global CPS slot. It paces the campaign's calls towards the dial without holding a worker slot;
 * - its dial starts (`dialLogKey`): claimDial.lua checks and counts the same rate on a second log at the moment each
 *   call really starts, together with DIAL_CPS. The global slots a call then waits for can bunch two of a campaign's
 *   calls closer than its rate allows (the calls passed its gate a second apart, their global slots came 100 ms
 *   apart): the claim makes the later one wait, so the rate holds where the carrier counts.
 * A campaign's rate can only make its calls wait longer: the global limiter is untouched.
 */
import { randomUUID } from 'node:crypto';
import { LuaScript, replies } from '../core/luaScript.js';
import type { RedisClient } from '../core/redisClient.js';
import { SECOND } from '../core/time.js';

/** campaignStart.lua: counts a start if the window has room; answers 0, or the ms until it has. */
const campaignStart = new LuaScript<[starts: string], [limit: number, windowMs: number, member: string], number>(
  'campaignStart',
  new URL('./lua/', import.meta.url),
  1,
  replies.integer,
);

/**
 * The window a rate is counted over: one second, or longer for rates below one per second (0.2 cps: one start per
 * 5 s), so the limit is a whole number of starts.
 */
export function rateWindow(cps: number): { limit: number; windowMs: number } {
  if (cps >= 1) return { limit: Math.floor(cps), windowMs: SECOND };
  return { limit: 1, windowMs: Math.ceil(SECOND / cps) };
}

/** Per-campaign start logs (see the file's comment). */
export class CampaignRate {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /** The log claimDial.lua counts the campaign's dial starts in (in the campaign's hash slot, like its other keys). */
  dialLogKey(campaignId: string): string {
    return `${this.prefix}:dialer:{${campaignId}}:dials`;
  }

  /** Counts a start of `campaignId` at `cps` starts per second; 0 when counted, else the ms to wait before asking again. */
  async take(campaignId: string, cps: number): Promise<number> {
    const { limit, windowMs } = rateWindow(cps);
    return campaignStart.run(this.redis, [`${this.prefix}:dialer:{${campaignId}}:starts`], [limit, windowMs, randomUUID()]);
  }
}
