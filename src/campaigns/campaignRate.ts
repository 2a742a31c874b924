/**
 * A campaign's own call rate (its `cps`, or its ramp), inside the global DIAL_CPS: a sliding-window log per campaign,
 * counted when a call passes its campaign's gate, right before it takes its lease and its global CPS slot. It is a
 * separate check from the global window (claimDial.lua), so the global limiter is untouched: a campaign's rate can
 * only make its calls wait longer.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisClient } from '../core/redisClient.js';
import { SECOND } from '../core/time.js';

interface RateCommands {
  dialerCampaignStart(key: string, limit: number, windowMs: number, member: string): Promise<number>;
}

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
  private readonly redis: RedisClient & RateCommands;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
  ) {
    if (!('dialerCampaignStart' in redis)) {
      redis.defineCommand('dialerCampaignStart', { numberOfKeys: 1, lua: readFileSync(new URL('./lua/campaignStart.lua', import.meta.url), 'utf8') });
    }
    this.redis = redis as RedisClient & RateCommands;
  }

  /** Counts a start of `campaignId` at `cps` starts per second; 0 when counted, else the ms to wait before asking again. */
  async take(campaignId: string, cps: number): Promise<number> {
    const { limit, windowMs } = rateWindow(cps);
    return Number(await this.redis.dialerCampaignStart(`${this.prefix}:dialer:{${campaignId}}:starts`, limit, windowMs, randomUUID()));
  }
}
