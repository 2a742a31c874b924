/**
 * The `Idempotency-Key` request header (as in IETF draft-ietf-httpapi-idempotency-key-header and payment APIs): the
 * first request with a key stores a fingerprint of what it asked for (route, campaign and body, key order ignored)
 * for RETENTION_S; a later request with the same key and the same fingerprint is a retry and gets the same call, one
 * with another fingerprint is refused (409). The fingerprint lives in Redis, not in the process, so retries may land
 * on any API instance. A request refused for its content (422) releases its key, so the caller may fix the request
 * and retry under the same key.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from '../core/redisClient.js';

/** 24 hours, as payment APIs keep keys: long enough for any client's retries. */
const RETENTION_S = 24 * 60 * 60;

/** Deletes the key only while it still holds this request's fingerprint (a compare-and-delete). */
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** What a key came to: the first use, a retry of the same request, or another request under a used key. */
export type IdempotencyClaim = { status: 'first' } | { status: 'retry' } | { status: 'conflict' };

/** JSON with object keys sorted at every level, so `{"a":1,"b":2}` and `{"b":2,"a":1}` fingerprint alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The value of an `Idempotency-Key` header: the draft standard sends it as a structured-field string (`"abc"`),
 * payment APIs bare (`abc`); both name the same key.
 */
export function idempotencyKeyOf(header: string): string {
  return header.length >= 2 && header.startsWith('"') && header.endsWith('"') ? header.slice(1, -1) : header;
}

export class IdempotencyKeys {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private redisKey(key: string): string {
    return `${this.prefix}:api:idempotency:${createHash('sha256').update(key).digest('hex')}`;
  }

  /** Fingerprint of a request: the route and everything it asked for. */
  static fingerprint(route: string, request: unknown): string {
    return createHash('sha256').update(route).update('\u0000').update(canonicalJson(request)).digest('hex');
  }

  /** Claims `key` for a request with `fingerprint` (one SET NX, then a GET when the key was taken). */
  async claim(key: string, fingerprint: string): Promise<IdempotencyClaim> {
    const redisKey = this.redisKey(key);
    // twice at most: the key may expire (or be released) between the SET NX and the GET, once
    for (let round = 0; round < 2; round++) {
      const set = await this.redis.set(redisKey, fingerprint, 'EX', RETENTION_S, 'NX');
      if (set === 'OK') return { status: 'first' };
      const stored = await this.redis.get(redisKey);
      if (stored !== null) return stored === fingerprint ? { status: 'retry' } : { status: 'conflict' };
    }
    // gone twice in a row: someone keeps releasing it; a retry of this request will settle it
    return { status: 'conflict' };
  }

  /** Lets `key` go again (the request it was claimed for was refused for its content). */
  async release(key: string, fingerprint: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, this.redisKey(key), fingerprint);
  }
}
