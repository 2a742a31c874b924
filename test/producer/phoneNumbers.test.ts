import { describe, expect, it } from 'vitest';
import type { CountryCode } from 'libphonenumber-js';
import {
  PhoneNumberError,
  extensionDtmf,
  formatPhoneNumber,
  normalizePhoneNumber,
  parsePhoneNumber,
  parseRegion,
  splitPhoneNumber,
} from '../../src/core/phone.js';

describe('numbers as people write them', () => {
  it.each<[string, CountryCode | undefined, string, string | undefined]>([
    // national numbers, read in the campaign's region (the examples first)
    ['4155550123', 'US', '+14155550123', undefined],
    ['(415) 555-0125', 'US', '+14155550125', undefined],
    ['020 7946 0958', 'GB', '+442079460958', undefined],
    ['001-415-555-0127', 'GB', '+14155550127', undefined],
    ['001-415-555-0127', 'US', '+14155550127', undefined], // 00 is international even where the prefix is 011
    ['001-415-555-0127', undefined, '+14155550127', undefined],
    ['011 44 20 7946 0958', 'US', '+442079460958', undefined],
    ['1 (415) 555-0130', 'US', '+14155550130', undefined],
    ['030 1234567', 'DE', '+49301234567', undefined],
    ['06 12 34 56 78', 'FR', '+33612345678', undefined],
    ['415.555.0131', 'US', '+14155550131', undefined],
    // international forms ignore the region
    ['+44 (0)20 7946 0958', 'US', '+442079460958', undefined],
    ['+1 415 555 0132', 'GB', '+14155550132', undefined],
    ['+14155550133', undefined, '+14155550133', undefined],
    ["'+14155550134", undefined, '+14155550134', undefined], // a spreadsheet's text mark
    ['tel:+1-650-555-0100', undefined, '+16505550100', undefined],
    // extensions, every way they are written
    ['+1 650 555 0100 #136', undefined, '+16505550100', '136'],
    ['+1 650 555 0100 x138', undefined, '+16505550100', '138'],
    ['+1 650 555 0100;ext=139', undefined, '+16505550100', '139'],
    ['+1 650 555 0100 ext. 140', undefined, '+16505550100', '140'],
    ['+1 650 555 0100 extension 141', undefined, '+16505550100', '141'],
    ['+1 650 555 0100,,142', undefined, '+16505550100', '142'],
    ['tel:+1-650-555-0100;ext=143', undefined, '+16505550100', '143'],
    ['(650) 555-0100 X144', 'US', '+16505550100', '144'],
  ])('%s (region %s) → %s ext %s', (input, region, e164, extension) => {
    expect(parsePhoneNumber(input, region)).toEqual(extension === undefined ? { e164 } : { e164, extension });
  });

  it.each<[string, CountryCode | undefined, RegExp]>([
    // the shared parser names the setting only: each edge names its own inputs (REGION_SOURCES)
    ['4155550123', undefined, /add \+<country code> .*or set a default region: DIAL_DEFAULT_REGION$/],
    ['(415) 555-0125', undefined, /no country code/],
    ['+1 555 CALL-NOW', undefined, /letters: write the number in digits/],
    ['1.4155550233E+10', undefined, /scientific notation, as Excel shows a long number .*format the phone column as Text/],
    ['1,4155550233E+10', 'DE', /scientific notation/],
    ['+1415', undefined, /too short for its country code/],
    ['415555', 'US', /too short for a national number of US/],
    ['+1 415 555 0123 4567 89', undefined, /too long/],
    ['+999 1234 5678', undefined, /unknown country code/],
    ['', undefined, /it is empty/],
    ['n/a', undefined, /no digits/],
    ['+1 415 555*0123', undefined, /unexpected character "\*"/],
    // an extension longer than 15 digits is too long, not letters in the number
    ['+1 650 555 0100 x12345678901234567890', undefined, /^the extension is too long: 20 digits, at most 15$/],
    ['+1 650 555 0100;ext=1234567890123456', undefined, /^the extension is too long: 16 digits, at most 15$/],
  ])('refuses %s (region %s) saying why', (input, region, reason) => {
    const attempt = () => parsePhoneNumber(input, region);
    expect(attempt).toThrow(PhoneNumberError);
    try {
      attempt();
    } catch (err) {
      const error = err as PhoneNumberError;
      expect(error.problem).toMatch(reason);
      // the person who typed it sees it as typed; the message (logs, stored reasons) keeps the digits masked
      expect(error.forPerson).toContain(JSON.stringify(input));
      expect(error.message).not.toContain(input.replace(/\D/g, '').slice(0, 7) || 'never-matches');
      expect(error.forPerson).not.toContain('\n');
    }
  });

  it('shows the user their input in the person-facing message (the issue: "****" and "********3310" before)', () => {
    const vanity = (() => {
      try {
        return parsePhoneNumber('+1 555 CALL-NOW');
      } catch (err) {
        return err;
      }
    })();
    expect(vanity).toBeInstanceOf(PhoneNumberError);
    expect((vanity as PhoneNumberError).forPerson).toContain('"+1 555 CALL-NOW"');
    expect((vanity as PhoneNumberError).forPerson).not.toContain('****');
  });

  it('keeps the extension with its own identity in the stored form, and dials it as DTMF after a pause', () => {
    const a = parsePhoneNumber('+1 650 555 0100 #136');
    const b = parsePhoneNumber('+1 650 555 0100 x138');
    expect(formatPhoneNumber(a)).toBe('+16505550100;ext=136');
    expect(formatPhoneNumber(b)).not.toBe(formatPhoneNumber(a));
    expect(splitPhoneNumber('+16505550100;ext=136')).toEqual(a);
    expect(splitPhoneNumber('+16505550100')).toEqual({ e164: '+16505550100' });
    expect(extensionDtmf('136')).toBe('wwww136'); // 'w' = 0.5 s in CreateSIPParticipant's dtmf
    expect(() => normalizePhoneNumber('+1 650 555 0100 x138')).toThrow(/extension is not taken here/);
    expect(normalizePhoneNumber('(650) 555-0100', 'US')).toBe('+16505550100');
  });

  it('takes regions as two-letter country codes, any case, UK as GB, and refuses the rest naming the source', () => {
    expect(parseRegion('us')).toBe('US');
    expect(parseRegion(' GB ')).toBe('GB');
    expect(parseRegion('UK')).toBe('GB');
    expect(() => parseRegion('USA', '--region')).toThrow(/--region: "USA" is not a country code; use two letters such as US/);
    expect(() => parseRegion('XX')).toThrow(/not a country code/);
  });
});
