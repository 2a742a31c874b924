/**
 * The cap on outbound calls in progress the consumers use (DIAL_MAX_ACTIVE_CALLS less DIAL_RESERVED_INBOUND), as the
 * consumers publish it: one small key beside the lease sets (`<prefix>:dialer:{dialer-active}:cap`), written by each
 * consumer at its start. `report --watch` shows this figure, not whatever its own shell's environment says; the last
 * consumer to start wins when consumers disagree.
 */
import type { RedisClient } from './redisClient.js';

/** What a consumer without a cap publishes. */
const NO_CAP = 'none';

/** The key holding the published cap. */
export function outboundCapKey(prefix: string): string {
  return `${prefix}:dialer:{dialer-active}:cap`;
}

/** What consumers published: no consumer ever started (`unknown`), no cap (`none`), or the cap. */
export type PublishedCap = { kind: 'unknown' } | { kind: 'none' } | { kind: 'cap'; cap: number };

/** Publishes the cap this consumer dials under (undefined: no cap). */
export async function publishOutboundCap(redis: RedisClient, prefix: string, cap: number | undefined): Promise<void> {
  await redis.set(outboundCapKey(prefix), cap === undefined ? NO_CAP : String(cap));
}

/** Reads the cap the consumers published (see PublishedCap). */
export async function readOutboundCap(redis: RedisClient, prefix: string): Promise<PublishedCap> {
  const raw = await redis.get(outboundCapKey(prefix));
  if (raw === null) return { kind: 'unknown' };
  const cap = Number(raw);
  return raw !== NO_CAP && Number.isInteger(cap) && cap >= 0 ? { kind: 'cap', cap } : { kind: 'none' };
}
