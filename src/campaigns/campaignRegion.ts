/**
 * A campaign's `default_region` and `ends_at` for the producer (enqueue, import, the API, schedule firings) and for
 * `move`: numbers written without a country code in a request that names no region are read in the region, before
 * DIAL_DEFAULT_REGION; a call to a campaign already ended, or a start time after the end, is refused. Kept apart from
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
 * One field of the document of each campaign in `campaignIds` that has one (one pipelined read), kept where `pick`
 * makes something of it. Documents were validated when written (campaignSettingsSchema).
 */
async function campaignField<T>(redis: RedisClient, prefix: string, campaignIds: Iterable<string>, pick: (doc: Record<string, unknown>) => T | undefined): Promise<Map<string, T>> {
  const ids = [...new Set(campaignIds)];
  const found = new Map<string, T>();
  if (ids.length === 0) return found;
  const docs = await redis.mget(ids.map((id) => campaignDocumentKey(prefix, id)));
  ids.forEach((id, i) => {
    const raw = docs[i];
    const value = raw ? pick(JSON.parse(raw) as Record<string, unknown>) : undefined;
    if (value !== undefined) found.set(id, value);
  });
  return found;
}

/** A document's `default_region`, when it has a supported two-letter one. */
const regionOf = (doc: Record<string, unknown>): CountryCode | undefined => (typeof doc.default_region === 'string' ? parseRegion(doc.default_region) : undefined);

/** A document's `ends_at` as epoch ms, when it has one. */
function endOf(doc: Record<string, unknown>): number | undefined {
  const endsAt = typeof doc.ends_at === 'string' ? Date.parse(doc.ends_at) : Number.NaN;
  return Number.isFinite(endsAt) ? endsAt : undefined;
}

/** The `default_region` of each campaign in `campaignIds` that has a document with one (a supported two-letter region). */
export function campaignRegions(redis: RedisClient, prefix: string, campaignIds: Iterable<string>): Promise<Map<string, CountryCode>> {
  return campaignField(redis, prefix, campaignIds, regionOf);
}

/**
 * The `ends_at` (epoch ms) of each campaign in `campaignIds` whose document has one: the producer and `move` refuse a
 * start time after it, since the call would only end `expired` then.
 */
export function campaignEndTimes(redis: RedisClient, prefix: string, campaignIds: Iterable<string>): Promise<Map<string, number>> {
  return campaignField(redis, prefix, campaignIds, endOf);
}

/** What the producer takes from a campaign's document: its `default_region` and its `ends_at` (epoch ms), each when set. */
export interface CampaignEnqueueSettings {
  region?: CountryCode;
  endsAt?: number;
}

/**
 * campaignRegions and campaignEndTimes in one read, for the producer: every call it enqueues needs its campaign's end
 * (a campaign already ended takes no call), so the documents are read once per batch for both.
 */
export function campaignEnqueueSettings(redis: RedisClient, prefix: string, campaignIds: Iterable<string>): Promise<Map<string, CampaignEnqueueSettings>> {
  return campaignField(redis, prefix, campaignIds, (doc) => {
    const region = regionOf(doc);
    const endsAt = endOf(doc);
    if (region === undefined && endsAt === undefined) return undefined;
    return { ...(region === undefined ? {} : { region }), ...(endsAt === undefined ? {} : { endsAt }) };
  });
}
