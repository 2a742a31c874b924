import { describe, expect, it } from 'vitest';
import { callRequestSchema, type CallRequest } from '../../src/producer/enqueueCalls.js';
import { keyedCallId, phoneNumberKey } from '../../src/producer/callIds.js';
import { fastCheckedRequest } from '../../src/producer/requestFastPath.js';

/**
 * The enqueue path validates plainly valid requests without zod (requestFastPath.ts). It must never accept what zod
 * refuses, and must return exactly zod's output: these tests compare the two on chosen edge cases and on many requests
 * built at random from valid and invalid field values.
 */

function expectSameAsZod(request: unknown): void {
  const fast = fastCheckedRequest(request);
  const zod = callRequestSchema.safeParse(request);
  if (fast === undefined) return; // zod decides (and words the error)
  expect(zod.success, `fast path accepted what zod refuses: ${JSON.stringify(request)}`).toBe(true);
  expect(fast).toStrictEqual(zod.data);
}

const symbolKeyed = { a: '1', [Symbol('s')]: 'x' };
const protoKeyed = JSON.parse('{"__proto__": "x", "a": "1"}') as Record<string, unknown>;
const nonEnumerable = Object.defineProperty({ a: '1' }, 'hidden', { value: 'x', enumerable: false });
class NotPlain {
  a = '1';
}

/**
 * Values each field may take in the random requests: mostly valid ones (so many requests pass both), and invalid ones
 * and edge cases of the bounds (so the refusals are compared too).
 */
const FIELD_VALUES: Record<string, { valid: unknown[]; invalid: unknown[] }> = {
  phoneNumber: { valid: ['+14155550100', ' ', 'x', '+1 650 555 0100 x136'], invalid: ['', 7, undefined, null] },
  region: { valid: [undefined, 'US', 'us', 'UK', ' gb '], invalid: ['XX', '', 3] },
  campaignId: { valid: [undefined, 'c1', 'x'.repeat(128)], invalid: ['', 'a:b', 'x'.repeat(129), 5, 'ü'] },
  metadata: {
    valid: [
      undefined,
      {},
      { a: 'x', b: 2, c: true, d: null },
      { big: 'x'.repeat(16 * 1024 - 10) },
      { big: 'é'.repeat(5_000) },
      { c: '\u0001'.repeat(2_700) }, // 6 bytes of JSON per character: 16,208 bytes, within the limit
      { n: -1.2345678901234567e-308, t: true, s: '\u0001'.repeat(2_690) },
      { 1: 'one', b: 'two', 0: 'zero' },
      nonEnumerable,
      Object.create(null) as object,
      symbolKeyed,
      protoKeyed,
      new NotPlain(),
    ],
    invalid: [
      { a: Number.NaN },
      { a: Infinity },
      { a: undefined },
      { a: [1] },
      { a: { b: 1 } },
      [],
      null,
      'x',
      { big: 'x'.repeat(16 * 1024) },
      { big: 'é'.repeat(9_000) },
      { c: '\u0001'.repeat(2_731) }, // 16,394 bytes of JSON
      new Date(0),
    ],
  },
  key: { valid: [undefined, 'k', 'x'.repeat(512)], invalid: ['', 'x'.repeat(513), 4] },
  dedupeByNumber: { valid: [undefined, true, false], invalid: ['yes', 0] },
  notBefore: { valid: [undefined, 1, Date.now(), new Date(0)], invalid: [0, -5, 1.5, Number.MAX_SAFE_INTEGER + 2, new Date(Number.NaN), '2030-01-01'] },
  expiresAt: { valid: [undefined, Date.now(), new Date(1)], invalid: [0, Number.NaN] },
  agentProfile: { valid: [undefined, 'survey'], invalid: ['', 9] },
  callWindow: { valid: [undefined, undefined, { start: '09:00', end: '17:00', timeZone: 'UTC' }], invalid: [{}] },
  priority: { valid: [undefined, 0, 1, 1000], invalid: [1001, -1, 2.5, '3', Number.NaN] },
  extra: { valid: [undefined, 'ignored'], invalid: [] },
};
/** Chance that a field takes an invalid value. */
const INVALID_CHANCE = 0.08;

/** A small deterministic PRNG (mulberry32), so a failure names a request that reproduces. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('the enqueue fast path', () => {
  it('takes the requests enqueue, import and the API send (so the saving is real)', () => {
    const rows: CallRequest[] = [
      { phoneNumber: '+14155550100' },
      { phoneNumber: '(415) 555-0100', region: 'US', campaignId: 'spring', metadata: { first_name: 'Ada', account: '17' }, dedupeByNumber: true },
      { phoneNumber: '+14155550100', campaignId: 'c', key: 'row-1', metadata: { n: 1, vip: false, note: null }, priority: 10, notBefore: Date.now() + 1000, expiresAt: Date.now() + 60_000, agentProfile: 'survey' },
    ];
    for (const row of rows) {
      expect(fastCheckedRequest(row)).toBeDefined();
      expectSameAsZod(row);
    }
  });

  it('leaves to zod what it does not plainly accept (dates, calling windows, odd objects)', () => {
    for (const request of [
      { phoneNumber: '+14155550100', notBefore: new Date() },
      { phoneNumber: '+14155550100', callWindow: { start: '09:00', end: '17:00', timeZone: 'UTC' } },
      { phoneNumber: '+14155550100', metadata: symbolKeyed },
      { phoneNumber: '+14155550100', metadata: protoKeyed },
      { phoneNumber: '+14155550100', metadata: new NotPlain() },
      Object.assign(Object.create(null) as object, { phoneNumber: '+14155550100' }),
      { phoneNumber: '+14155550100', metadata: { big: 'é'.repeat(9_000) } },
    ]) {
      expect(fastCheckedRequest(request)).toBeUndefined();
      expectSameAsZod(request);
    }
  });

  it('never accepts what zod refuses, and returns zod\'s output, on 20,000 random requests', () => {
    const next = random(20_240_601);
    const fields = Object.entries(FIELD_VALUES);
    let fastTaken = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const request: Record<string, unknown> = {};
      for (const [name, { valid, invalid }] of fields) {
        const values = invalid.length > 0 && next() < INVALID_CHANCE ? invalid : valid;
        const value = values[Math.floor(next() * values.length)];
        // a field either absent or present (possibly as undefined): both forms reach the producer
        if (value !== undefined || next() < 0.5) request[name] = value;
      }
      if (fastCheckedRequest(request)) fastTaken++;
      if (!callRequestSchema.safeParse(request).success) refused++;
      expectSameAsZod(request);
    }
    // the comparison covered both requests the fast path took and requests zod refused
    expect(fastTaken).toBeGreaterThan(1000);
    expect(refused).toBeGreaterThan(1000);
  });
});

describe('keyed call ids', () => {
  it('stay what they were (SHA-256 of campaign, NUL, key): a key re-sent after an upgrade still names its call', () => {
    expect(keyedCallId('spring', 'row-1')).toBe('k-7b6fcc7754d9684016effc2417c69c22');
    expect(keyedCallId('spring', phoneNumberKey('+14155550100'))).toBe('k-5e3ad21e46b6e638f8e5c9deefa786ee');
    expect(keyedCallId('c', 'ключ-é')).toBe('k-f26000687c63e107816fa2ea1b105492');
  });
});
