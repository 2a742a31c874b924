import { isRegion } from '../core/phone.js';
import { ID_PATTERN, MAX_CALL_METADATA_BYTES, MAX_ID_LENGTH, type CallMetadata } from '../core/queues.js';
import type { CallWindow } from '../core/callWindow.js';

/** A call request as callRequestSchema outputs it (enqueueCalls' `prepare` reads these fields and no others). */
export interface CheckedRequest {
  phoneNumber: string;
  region?: string;
  campaignId?: string;
  metadata?: CallMetadata;
  key?: string;
  dedupeByNumber?: boolean;
  notBefore?: Date | number;
  expiresAt?: Date | number;
  agentProfile?: string;
  callWindow?: CallWindow;
  priority?: number;
}

/** Lowest call priority (BullMQ allows up to 2^21; a thousand levels is plenty for campaigns). */
export const MAX_CALL_PRIORITY = 1000;
/** Longest idempotency key. */
export const MAX_KEY_LENGTH = 512;

const isPlain = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;

const optionalString = (value: unknown, min: number, max = Infinity) =>
  value === undefined || (typeof value === 'string' && value.length >= min && value.length <= max);

/** zod's z.number().int().positive() for the values producers send (epoch ms); a Date is left to zod. */
const optionalEpochMs = (value: unknown) => value === undefined || (typeof value === 'number' && Number.isSafeInteger(value) && value > 0);

/** JSON.stringify writes a UTF-16 unit as at most 6 bytes (`\u001f`; other characters take at most 3 bytes of UTF-8). */
const MAX_JSON_BYTES_PER_UNIT = 6;
/** A key's quotes, its colon and the comma after its entry. */
const JSON_QUOTES_AND_PUNCTUATION = 4;
/** The longest JSON of a finite number (`-1.2345678901234567e-308`), true, false or null. */
const MAX_JSON_SCALAR_BYTES = 24;

/**
 * A copy of `metadata` when it is plainly what callMetadataSchema accepts: a plain object whose own enumerable string
 * keys hold strings, finite numbers, booleans or null, at most MAX_CALL_METADATA_BYTES as JSON. Undefined for anything
 * else (symbol or `__proto__` keys, a class instance, an over-size object …), which zod then judges and words.
 */
function checkedMetadata(metadata: unknown): CallMetadata | undefined {
  if (!isPlain(metadata) || Object.getOwnPropertySymbols(metadata).length > 0) return undefined;
  const copy: CallMetadata = {};
  // most JSON bytes the copy can take: braces, and per entry a quoted key, a colon, a comma and the value
  let mostBytes = 2;
  for (const key in metadata) {
    if (key === '__proto__' || !Object.hasOwn(metadata, key)) return undefined;
    const value = metadata[key];
    if (typeof value === 'string' || typeof value === 'boolean' || value === null || (typeof value === 'number' && Number.isFinite(value))) {
      copy[key] = value;
      mostBytes += JSON_QUOTES_AND_PUNCTUATION + MAX_JSON_BYTES_PER_UNIT * key.length + (typeof value === 'string' ? 2 + MAX_JSON_BYTES_PER_UNIT * value.length : MAX_JSON_SCALAR_BYTES);
    } else {
      return undefined;
    }
  }
  // well under the limit whatever the characters: no need to write the JSON to count it
  if (mostBytes <= MAX_CALL_METADATA_BYTES) return copy;
  // the byte limit as callMetadataSchema's refine counts it; UTF-8 is at most 3 bytes per UTF-16 unit, so a short JSON
  // string needs no byte count
  const json = JSON.stringify(copy);
  const bytes = json.length * 3 <= MAX_CALL_METADATA_BYTES ? json.length : Buffer.byteLength(json);
  return bytes <= MAX_CALL_METADATA_BYTES ? copy : undefined;
}

/**
 * callRequestSchema's output (enqueueCalls.ts, whose bounds are the constants above) for a request that plainly
 * satisfies it, without running zod (about a tenth of the
 * enqueue path's CPU per call went to it); undefined whenever anything is unusual — a Date, a calling window, a
 * prototype other than Object's, a value out of bounds — so zod then decides, with its own words for what is wrong.
 * It never accepts what zod refuses and returns what zod would: test/producer/requestFastPath.test.ts compares the two.
 */
export function fastCheckedRequest(request: unknown): CheckedRequest | undefined {
  if (!isPlain(request)) return undefined;
  const { phoneNumber, region, campaignId, metadata, key, dedupeByNumber, notBefore, expiresAt, agentProfile, callWindow, priority } = request;
  if (typeof phoneNumber !== 'string' || phoneNumber.length === 0) return undefined;
  if (callWindow !== undefined) return undefined;
  if (region !== undefined && (typeof region !== 'string' || !isRegion(region))) return undefined;
  if (campaignId !== undefined && !(typeof campaignId === 'string' && campaignId.length >= 1 && campaignId.length <= MAX_ID_LENGTH && ID_PATTERN.test(campaignId))) {
    return undefined;
  }
  if (!optionalString(key, 1, MAX_KEY_LENGTH) || !optionalString(agentProfile, 1)) return undefined;
  if (dedupeByNumber !== undefined && typeof dedupeByNumber !== 'boolean') return undefined;
  if (!optionalEpochMs(notBefore) || !optionalEpochMs(expiresAt)) return undefined;
  if (priority !== undefined && !(typeof priority === 'number' && Number.isSafeInteger(priority) && priority >= 0 && priority <= MAX_CALL_PRIORITY)) {
    return undefined;
  }
  let checkedMeta: CallMetadata | undefined;
  if (metadata !== undefined) {
    checkedMeta = checkedMetadata(metadata);
    if (checkedMeta === undefined) return undefined;
  }
  // the same keys zod's object output has: a field given (even as undefined) is kept, an absent one left out
  const out: CheckedRequest = { phoneNumber };
  if ('region' in request) out.region = region as string | undefined;
  if ('campaignId' in request) out.campaignId = campaignId as string | undefined;
  if ('metadata' in request) out.metadata = checkedMeta;
  if ('key' in request) out.key = key as string | undefined;
  if ('dedupeByNumber' in request) out.dedupeByNumber = dedupeByNumber;
  if ('notBefore' in request) out.notBefore = notBefore as number | undefined;
  if ('expiresAt' in request) out.expiresAt = expiresAt as number | undefined;
  if ('agentProfile' in request) out.agentProfile = agentProfile as string | undefined;
  if ('callWindow' in request) out.callWindow = undefined;
  if ('priority' in request) out.priority = priority as number | undefined;
  return out;
}
