import { getCountries, getCountryCallingCode, parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import metadata from 'libphonenumber-js/min/metadata';
import { describe, expect, it } from 'vitest';
import { parseForDialing, parsePhoneNumber, plainE164ForDialing } from '../../src/core/phone.js';

/**
 * parseForDialing skips libphonenumber's search for the country of a calling code several countries share (US, CA,
 * JM … on +1). It must give what libphonenumber's own parsePhoneNumberFromString gives for everything the dialer
 * reads: the E.164 number and isPossible(). Compared here over every calling code and every region, at every length.
 */

/** What the dialer reads of a parse: the E.164 number and whether it is possible, or nothing. */
function dialed(parsed: { number: string; isPossible(): boolean } | undefined): { number: string; possible: boolean } | undefined {
  return parsed && { number: parsed.number, possible: parsed.isPossible() };
}

function expectSame(text: string, region: CountryCode | undefined): void {
  expect(disagreement(text, region)).toBeUndefined();
}

/** Where parseForDialing and libphonenumber differ on `text`: both answers, or undefined when they agree. */
function disagreement(text: string, region: CountryCode | undefined): string | undefined {
  const expected = dialed(parsePhoneNumberFromString(text, region));
  const actual = dialed(parseForDialing(text, region));
  if (actual?.number === expected?.number && actual?.possible === expected?.possible) return undefined;
  return `${JSON.stringify(text)} in ${region ?? 'no region'}: ${JSON.stringify(actual)}, libphonenumber ${JSON.stringify(expected)}`;
}

/** The most disagreements a random comparison lists when it fails (every one fails it). */
const DISAGREEMENTS_SHOWN = 10;

/**
 * Compares every sample and asserts once: one vitest `expect` per sample cost more than both parsers together (the
 * two random comparisons took 4.6 s and 6.4 s of a loaded suite); each disagreement is still a failure, listed.
 */
function expectAllSame(samples: Iterable<[text: string, region: CountryCode | undefined]>): void {
  const found: string[] = [];
  let compared = 0;
  for (const [text, region] of samples) {
    compared += 1;
    const differs = disagreement(text, region);
    if (differs !== undefined) found.push(differs);
  }
  expect(compared).toBeGreaterThan(0);
  expect(found.slice(0, DISAGREEMENTS_SHOWN), `${found.length} of ${compared} disagree`).toEqual([]);
}

/** A small deterministic PRNG (mulberry32), so a failure names an input that reproduces. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const digits = (next: () => number, n: number) => Array.from({ length: n }, () => Math.floor(next() * 10)).join('');
const callingCodes = Object.keys((metadata as unknown as { country_calling_codes: Record<string, string[]> }).country_calling_codes);
const sharedCodes = Object.entries((metadata as unknown as { country_calling_codes: Record<string, string[]> }).country_calling_codes)
  .filter(([, countries]) => countries.length > 1)
  .map(([code]) => code);

describe('parsing a number for dialing without naming its country', () => {
  it('gives libphonenumber\'s E.164 number and isPossible() for numbers of shared calling codes whose answer depends on the country', () => {
    for (const [text, region] of [
      ['310 1234', 'CA'], // 7 digits: possible in Canada only
      ['+1 310 1234', undefined],
      ['(416) 555-0100', 'CA'],
      ['+1 416 555 0100', undefined],
      ['+1 876 555 0100', undefined], // Jamaica
      ['+44 1534 123456', undefined], // Jersey
      ['01534 123456', 'JE'],
      ['+44 20 7946 0958', undefined],
      ['020 7946 0958', 'GB'],
      ['+61 8 9162 1234', undefined], // Christmas Island
      ['+290 2 1234', undefined],
      ['+290 21234', undefined],
      ['+599 9 123 4567', undefined],
      ['+599 717 1234', undefined],
      ['15127408', 'CA'], // a national prefix libphonenumber strips only because the rest is possible in Canada
      ['+1 1 512 7408', undefined],
      ['1 (416) 555-0100', 'CA'],
      ['011 44 20 7946 0958', 'US'], // an international call prefix, read as such
      ['00 1 416 555 0100', 'GB'],
    ] as const) {
      expectSame(text, region);
    }
  });

  it('agrees with libphonenumber on random international numbers of every calling code and length', () => {
    const next = random(7);
    expectAllSame(
      (function* () {
        for (const code of callingCodes) {
          const samples = sharedCodes.includes(code) ? 40 : 4;
          for (let length = 1; length <= 17; length++) {
            for (let i = 0; i < samples; i++) {
              yield [`+${code}${digits(next, length)}`, undefined];
              yield [`+${code} 1${digits(next, length)}`, undefined]; // national-prefix-like digits after the code
              yield [`+${code} 0${digits(next, length)}`, undefined];
            }
          }
        }
      })(),
    );
  });

  it('agrees with libphonenumber on random national numbers in every region, with and without a national prefix', () => {
    const next = random(11);
    expectAllSame(
      (function* () {
        for (const region of getCountries()) {
          const samples = sharedCodes.includes(getCountryCallingCode(region)) ? 12 : 2;
          for (let length = 3; length <= 15; length++) {
            for (let i = 0; i < samples; i++) {
              const national = digits(next, length);
              for (const text of [national, `0${national}`, `1${national}`, `011${national}`, `00${national}`]) yield [text, region];
            }
          }
        }
      })(),
    );
  });

  it('leaves parsePhoneNumber\'s answers as they were for numbers as people write them', () => {
    expect(parsePhoneNumber('(416) 555-0100 x7', 'CA')).toEqual({ e164: '+14165550100', extension: '7' });
    expect(parsePhoneNumber('310-1234', 'CA')).toEqual({ e164: '+13101234' });
    // libphonenumber places a 7-digit +1 number in Canada's 310 range even for region US; so did the dialer before
    expect(parsePhoneNumber('310-1234', 'US')).toEqual({ e164: '+13101234' });
    expect(() => parsePhoneNumber('55-0125', 'US')).toThrow(/too short for a national number of US/);
    expect(parsePhoneNumber('001-415-555-0127')).toEqual({ e164: '+14155550127' });
  });
});

describe('reading a plain E.164 number without the general parser', () => {
  /** plainE164ForDialing either declines or gives the number libphonenumber reads, which it finds possible. */
  function expectAgrees(text: string): boolean {
    const fast = plainE164ForDialing(text);
    if (fast === undefined) return false;
    expect(dialed(parsePhoneNumberFromString(text)), JSON.stringify(text)).toEqual({ number: fast, possible: true });
    return true;
  }

  it('agrees with libphonenumber on every calling code, every national length and every leading digit', () => {
    const next = random(13);
    for (const code of callingCodes) {
      for (let length = 0; length <= 18; length++) {
        for (let lead = 0; lead <= 9; lead++) {
          const samples = sharedCodes.includes(code) ? 6 : 2;
          for (let i = 0; i < samples; i++) expectAgrees(`+${code}${length === 0 ? '' : `${lead}${digits(next, length - 1)}`}`);
        }
      }
    }
  });

  it('answers for the numbers campaigns mostly hold, and declines anything that is not plain E.164', () => {
    for (const text of ['+14155550100', '+442079460958', '+4915112345678', '+33612345678', '+61412345678']) {
      expect(expectAgrees(text), text).toBe(true);
    }
    // spaces, an extension, a scheme, a spreadsheet mark, 00, a national number: the general parser's
    for (const text of ['+1 415 555 0100', '+14155550100x12', 'tel:+14155550100', "'+14155550100", '0014155550100', '4155550100', '+0123456789']) {
      expect(plainE164ForDialing(text), text).toBeUndefined();
    }
    // a 7-digit +1 number is possible in Canada only, +1 1… may be a national prefix: the general parser decides
    expect(plainE164ForDialing('+13101234')).toBeUndefined();
    expect(plainE164ForDialing('+115127408')).toBeUndefined();
    expect(parsePhoneNumber('+14155550100')).toEqual({ e164: '+14155550100' });
  });
});
