/**
 * A campaign's `default_region` and `ends_at` for the producer (enqueue, import, the API, schedule firings) and for
 * `move`: numbers written without a country code in a request that names no region are read in the region, before
 * DIAL_DEFAULT_REGION; a start time after the end is refused. Kept apart from
 * campaignStore.ts, which uses the producer (cancel, pause), so the producer can read it without an import cycle.
 */
import type { RedisClient } from '../core/redisClient.js';
import type { CountryCode } from 'libphonenumber-js';
import { parseRegion } from '../core/phone.js';

/** The key of a campaign's document (CampaignStore writes it). */
export function campaignDocumentKey(prefix: string, campaignId: string): string {
  return `${prefix}:dialer:{${campaignId}}:campaign`;
}

/**
 * The `default_region` of each campaign in `campaignIds` that has a document with one (one pipelined read). The
 * document was validated when written (campaignSettingsSchema: a supported two-letter region).
 */
export async function campaignRegions(redis: RedisClient, prefix: string, campaignIds: Iterable<string>): Promise<Map<string, CountryCode>> {
  const ids = [...new Set(campaignIds)];
  const regions = new Map<string, CountryCode>();
  if (ids.length === 0) return regions;
  const docs = await redis.mget(ids.map((id) => campaignDocumentKey(prefix, id)));
  ids.forEach((id, i) => {
    const raw = docs[i];
    if (!raw) return;
    const region = (JSON.parse(raw) as { default_region?: unknown }).default_region;
    if (typeof region === 'string') regions.set(id, parseRegion(region));
  });
  return regions;
}

/**
 * The `ends_at` (epoch ms) of each campaign in `campaignIds` whose document has one (one pipelined read): the producer
 * refuses a start time after it, since the call would only end `expired` then.
 */
export async function campaignEndTimes(redis: RedisClient, prefix: string, campaignIds: Iterable<string>): Promise<Map<string, number>> {
  const ids = [...new Set(campaignIds)];
  const ends = new Map<string, number>();
  if (ids.length === 0) return ends;
  const docs = await redis.mget(ids.map((id) => campaignDocumentKey(prefix, id)));
  ids.forEach((id, i) => {
    const raw = docs[i];
    if (!raw) return;
    const endsAt = (JSON.parse(raw) as { ends_at?: unknown }).ends_at;
    if (typeof endsAt === 'string' && Number.isFinite(Date.parse(endsAt))) ends.set(id, Date.parse(endsAt));
  });
  return ends;
}
