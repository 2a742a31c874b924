/**
 * Bearer tokens of the HTTP API (RFC 6750), from API_TOKENS: a comma-separated list of `token` (every scope) or
 * `token:scope+scope`. Presented tokens are compared in constant time: each configured token is kept as its SHA-256
 * digest, the presented one is hashed the same way, and every digest is compared with `timingSafeEqual` (same length
 * by construction, no early exit), so neither the answer time nor its length says how much of a token was right.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../core/errors.js';

export const SCOPES = ['enqueue', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** RFC 6750 b64token characters, without "+" (it separates scopes) — the token part of an API_TOKENS entry. */
const TOKEN_PATTERN = /^[A-Za-z0-9\-._~/]+=*$/;
/** Shorter tokens are accepted (tests, local use) but logged as a warning by `serve`. */
export const RECOMMENDED_MIN_TOKEN_CHARS = 24;
/** Hex digits of a token's digest that name it in logs and rate-limit keys (the token itself is never written). */
const TOKEN_LABEL_HEX = 16;

export interface ApiToken {
  /** Names the token in logs and Redis keys: the first hex digits of its SHA-256, never the token. */
  label: string;
  scopes: ReadonlySet<Scope>;
  digest: Buffer;
  /** The token is shorter than RECOMMENDED_MIN_TOKEN_CHARS. */
  short: boolean;
}

const digestOf = (token: string) => createHash('sha256').update(token, 'utf8').digest();
const isScope = (s: string): s is Scope => (SCOPES as readonly string[]).includes(s);

/**
 * Parses API_TOKENS. Throws ConfigError naming the variable (and the entry's position, never the token) for an empty
 * list, an entry with characters a bearer token cannot hold, an unknown scope or a token listed twice.
 */
export function parseApiTokens(text: string | undefined): ApiToken[] {
  const fail = (why: string) => new ConfigError(`API_TOKENS: ${why}`);
  if (text === undefined || text.trim() === '') {
    throw fail('not set: `serve` needs at least one token, e.g. API_TOKENS=<token> or <token>:enqueue+read');
  }
  const tokens: ApiToken[] = [];
  const seen = new Set<string>();
  text.split(',').forEach((raw, i) => {
    const entry = raw.trim();
    const where = `entry ${i + 1}`;
    if (entry === '') throw fail(`${where} is empty (a stray comma?)`);
    const colon = entry.indexOf(':');
    const token = colon === -1 ? entry : entry.slice(0, colon);
    const scopeText = colon === -1 ? undefined : entry.slice(colon + 1);
    if (!TOKEN_PATTERN.test(token)) throw fail(`${where}: a token may hold only letters, digits and - . _ ~ / (then = padding)`);
    let scopes: Scope[] = [...SCOPES];
    if (scopeText !== undefined) {
      const names = scopeText.split('+').map((s) => s.trim());
      const unknown = names.find((s) => !isScope(s));
      if (unknown !== undefined) throw fail(`${where}: unknown scope "${unknown}" (scopes: ${SCOPES.join(', ')}; join them with +)`);
      scopes = names.filter(isScope);
    }
    const digest = digestOf(token);
    const label = digest.toString('hex').slice(0, TOKEN_LABEL_HEX);
    if (seen.has(label)) throw fail(`${where}: the same token is listed twice`);
    seen.add(label);
    tokens.push({ label, scopes: new Set(scopes), digest, short: token.length < RECOMMENDED_MIN_TOKEN_CHARS });
  });
  return tokens;
}

/** What an Authorization header came to. */
export type Authentication =
  | { status: 'ok'; token: ApiToken }
  | { status: 'missing' }
  | { status: 'malformed'; why: string }
  | { status: 'unknown' };

/** The `Bearer` scheme is case-insensitive (RFC 9110 §11.1); one space, then the token (RFC 6750 §2.1). */
const BEARER = /^bearer +(\S+)\s*$/i;

/** Finds the token an `Authorization` header carries, comparing against every configured token in constant time. */
export function authenticate(tokens: readonly ApiToken[], header: string | undefined): Authentication {
  if (header === undefined || header.trim() === '') return { status: 'missing' };
  const match = BEARER.exec(header.trim());
  if (!match?.[1]) return { status: 'malformed', why: 'expected `Authorization: Bearer <token>`' };
  const presented = digestOf(match[1]);
  let found: ApiToken | undefined;
  for (const token of tokens) {
    // every token is compared, whichever matches, so the time taken does not tell which one (or whether any) did
    if (timingSafeEqual(presented, token.digest) && found === undefined) found = token;
  }
  return found ? { status: 'ok', token: found } : { status: 'unknown' };
}
