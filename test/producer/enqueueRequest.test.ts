import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/core/errors.js';
import { PhoneNumberError } from '../../src/core/phone.js';
import { SECOND } from '../../src/core/time.js';
import { enqueueRequest, formatImportSummary } from '../../src/cli/producerCommands.js';

const now = Date.parse('2030-06-01T12:00:00Z');

describe('enqueue flags → call request', () => {
  it('--priority gives the call a queue priority from 0 (first) to 1000, and refuses anything else', () => {
    expect(enqueueRequest('+14152000009', { priority: '10' }, now).priority).toBe(10);
    expect(enqueueRequest('+14152000009', {}, now).priority).toBeUndefined();
    for (const bad of ['x', '-1', '1001', '2.5', '']) expect(() => enqueueRequest('+14152000009', { priority: bad }, now)).toThrow(/--priority/);
  });

  it('--window, --time-zone and --days give the call its calling window; the zone defaults to DIAL_TIME_ZONE', () => {
    const request = enqueueRequest('+14152000009', { window: '9:00-20:00', timeZone: 'America/Chicago', days: 'mon-fri' }, now);
    expect(request.callWindow).toEqual({ from: '09:00', to: '20:00', timeZone: 'America/Chicago', days: [1, 2, 3, 4, 5] });
    expect(enqueueRequest('+14152000009', { window: '10:00-18:00' }, now, { timeZone: () => 'Europe/Berlin' }).callWindow).toEqual({
      from: '10:00',
      to: '18:00',
      timeZone: 'Europe/Berlin',
    });
    expect(enqueueRequest('+14152000009', {}, now).callWindow).toBeUndefined();
    expect(() => enqueueRequest('+14152000009', { days: 'mon-fri' }, now)).toThrow(/--days needs --window/);
    expect(() => enqueueRequest('+14152000009', { timeZone: 'Europe/Paris' }, now)).toThrow(/--time-zone needs --window .*or an --at\/--expires-at without an offset/);
    expect(() => enqueueRequest('+14152000009', { window: '9-5' }, now)).toThrow(/--window: call window must look like 09:00-20:00/);
    expect(() => enqueueRequest('+14152000009', { window: '09:00-17:00', timeZone: 'Atlantis/Capital' }, now)).toThrow(InvalidInputError);
  });

  it('normalises the number and maps every flag', () => {
    const request = enqueueRequest(
      '+1 (415) 200-0001',
      {
        campaign: 'spring',
        metadata: '{"first_name":"Ada","vip":true,"score":3,"note":null}',
        key: 'order-1',
        at: '2030-06-01T13:00:00Z',
        expiresAt: '2030-06-01T18:00:00+02:00',
        profile: 'survey',
      },
      now,
    );
    expect(request).toEqual({
      phoneNumber: '+14152000001',
      campaignId: 'spring',
      metadata: { first_name: 'Ada', vip: true, score: 3, note: null },
      key: 'order-1',
      notBefore: now + 3600 * SECOND,
      expiresAt: now + 4 * 3600 * SECOND,
      agentProfile: 'survey',
    });
  });

  it('defaults the campaign, turns --delay into a start time from `now`, and an --at a few minutes past into "now"', () => {
    expect(enqueueRequest('+14152000001', { delay: '90s' }, now)).toMatchObject({ campaignId: 'default', notBefore: now + 90 * SECOND });
    expect(enqueueRequest('+14152000001', { delay: '5m' }, now).notBefore).toBe(now + 300 * SECOND);
    expect(enqueueRequest('+14152000001', { delay: '90' }, now).notBefore).toBe(now + 90 * SECOND); // bare numbers are seconds
    expect(enqueueRequest('+14152000001', { delay: '1h30m' }, now).notBefore).toBe(now + 90 * 60 * SECOND);
    expect(enqueueRequest('+14152000001', { delay: 'PT5M' }, now).notBefore).toBe(now + 300 * SECOND);
    expect(enqueueRequest('+14152000001', { at: '2030-06-01T11:57:00Z' }, now).notBefore).toBeUndefined();
  });

  it('reads an --at without offset in --time-zone, else DIAL_TIME_ZONE', () => {
    expect(enqueueRequest('+14152000001', { at: '2030-06-01T09:00', timeZone: 'America/New_York' }, now).notBefore).toBe(Date.parse('2030-06-01T13:00:00Z'));
    expect(enqueueRequest('+14152000001', { at: '2030-06-01 15:00' }, now, { timeZone: () => 'Europe/Berlin' }).notBefore).toBe(Date.parse('2030-06-01T13:00:00Z'));
  });

  it.each([
    ['a number without country code', '4152000001', {}, /not a valid phone number/],
    ['a too-short number', '+1415', {}, /not a valid phone number/],
    ['letters', 'hello', {}, /not a valid phone number/],
    ['bad JSON', '+14152000001', { metadata: '{a:1}' }, /--metadata: not valid JSON/],
    ['nested JSON', '+14152000001', { metadata: '{"a":{"b":1}}' }, /flat JSON object/],
    ['a JSON array', '+14152000001', { metadata: '["a"]' }, /flat JSON object/],
    ['a JSON string', '+14152000001', { metadata: '"a"' }, /flat JSON object/],
    ['JSON null', '+14152000001', { metadata: 'null' }, /flat JSON object/],
    ['--at with --delay', '+14152000001', { at: '2030-06-01T13:00:00Z', delay: '90s' }, /either --at or --delay/],
    ['a bad --at', '+14152000001', { at: 'tomorrow' }, /--at: expected a date and time such as 2030-01-31T09:30:00Z/],
    ['an --at without time', '+14152000001', { at: '2030-06-02' }, /--at: expected a date and time/],
    ['an impossible --at', '+14152000001', { at: '2030-02-30T10:00:00Z' }, /--at: expected a date and time/],
    ['an --at far in the past (it used to dial at once)', '+14152000001', { at: '2030-06-01T11:00:00Z' }, /--at: "2030-06-01T11:00:00Z" is in the past .*leave it out to dial now/],
    ['an --at beyond 90 days', '+14152000001', { at: '2030-12-01T11:00:00Z' }, /--at: .* is more than 90 days ahead/],
    ['a bad --delay', '+14152000001', { delay: 'soon' }, /--delay: expected a duration such as 90 \(seconds\), 90s, 5m, 1h30m/],
    ['--delay 10000d (it used to be accepted)', '+14152000001', { delay: '10000d' }, /--delay: "10000d" is more than 90 days/],
    ['an --expires-at beyond 90 days', '+14152000001', { expiresAt: '2031-06-01T11:00:00Z' }, /--expires-at: .* is more than 90 days ahead/],
    ['a past --expires-at', '+14152000001', { expiresAt: '2030-06-01T11:00:00Z' }, /--expires-at is in the past/],
    ['--expires-at before --at', '+14152000001', { at: '2030-06-01T14:00:00Z', expiresAt: '2030-06-01T13:00:00Z' }, /--expires-at is not after/],
    ['a campaign id with ":"', '+14152000001', { campaign: 'a:b' }, /--campaign/],
    ['an empty --key', '+14152000001', { key: '' }, /--key/],
    ['an empty --profile', '+14152000001', { profile: '' }, /--profile/],
  ])('refuses %s with InvalidInputError', (_label, number, flags, reason) => {
    const attempt = () => enqueueRequest(number, flags, now);
    expect(attempt).toThrow(InvalidInputError);
    expect(attempt).toThrow(reason);
  });

  it('keeps refusal messages on one line; the person sees the number as typed, the message (for logs) masks it', () => {
    try {
      enqueueRequest('415 200 0001', {}, now);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PhoneNumberError);
      expect((err as PhoneNumberError).forPerson).toBe(
        'not a valid phone number: "415 200 0001" (no country code: add +<country code> (e.g. +1 415 555 0123), or set a default region: --region US, a region column, or DIAL_DEFAULT_REGION)',
      );
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).not.toContain('4152000001');
    }
  });

  it('reads a national number in --region, else in DIAL_DEFAULT_REGION, and keeps an extension', () => {
    expect(enqueueRequest('(415) 200-0002', { region: 'us' }, now).phoneNumber).toBe('+14152000002');
    expect(enqueueRequest('020 7946 0958', {}, now, { region: () => 'GB' }).phoneNumber).toBe('+442079460958');
    // the flag wins over the setting
    expect(enqueueRequest('020 7946 0958', { region: 'GB' }, now, { region: () => 'US' }).phoneNumber).toBe('+442079460958');
    expect(enqueueRequest('+1 650 555 0100 x138', {}, now).phoneNumber).toBe('+16505550100;ext=138');
    expect(() => enqueueRequest('(415) 200-0002', { region: 'USA' }, now)).toThrow(/--region: "USA" is not a country code/);
  });
});

describe('import summary', () => {
  it('lists counts, then each rejected row with its line and reason', () => {
    const text = formatImportSummary('calls.csv', {
      campaignId: 'spring',
      rows: 5,
      enqueued: 2,
      duplicates: 1,
      rejected: [
        { line: 3, reason: 'phone_number is empty' },
        { line: 6, reason: 'malformed CSV row: 4 fields, the header has 3' },
      ],
    });
    expect(text).toBe(
      'imported calls.csv into campaign spring: 5 rows\nenqueued: 2\nduplicates: 1\nrejected: 2\n' +
        '  line 3: phone_number is empty\n  line 6: malformed CSV row: 4 fields, the header has 3\n',
    );
  });
});
