import { describe, expect, it } from 'vitest';
import { parseCallJob } from '../../src/consumer/parseCallJob.js';
import { parsePhoneNumber } from '../../src/core/phone.js';

/** Jobs other services push straight onto `calls` carry numbers as people write them, extensions included. */
const NOW = 1_700_000_000_000;

describe('a job pushed onto calls by another service', () => {
  it.each([
    ['+1 650 555 0100;ext=136', '+16505550100', '136'],
    ['+1 650 555 0100 x136', '+16505550100', '136'],
    ['+1 650 555 0100 #136', '+16505550100', '136'],
    ['+1 650 555 0100 ext. 136', '+16505550100', '136'],
    ['tel:+1-650-555-0100;ext=136', '+16505550100', '136'],
    ['+16505550100,,136', '+16505550100', '136'],
    ['+1 650 555 0100', '+16505550100', undefined],
  ])('splits the extension off %j as enqueue and import do', (phoneNumber, e164, extension) => {
    const parsed = parseCallJob({ phoneNumber, campaignId: 'pushed' }, 'job-1', NOW);
    expect(parsed).toMatchObject({ ok: true, call: { phoneNumber: e164, extension } });
    // one rule: the same split as the CLI and CSV import (parsePhoneNumber)
    const cli = parsePhoneNumber(phoneNumber);
    expect(parsed.ok && { e164: parsed.call.phoneNumber, extension: parsed.call.extension }).toEqual({ e164: cli.e164, extension: cli.extension });
  });

  it('reads the snake_case phone_number the same way', () => {
    expect(parseCallJob({ phone_number: '+1 650 555 0100 x7', campaign_id: 'pushed' }, '17', NOW)).toMatchObject({
      ok: true,
      call: { callId: 'job-17', phoneNumber: '+16505550100', extension: '7' },
    });
  });

  it('takes the extension field alone, or the same extension in both places', () => {
    expect(parseCallJob({ phoneNumber: '+16505550100', extension: '136' }, 'a', NOW)).toMatchObject({ ok: true, call: { extension: '136' } });
    expect(parseCallJob({ phoneNumber: '+16505550100;ext=136', extension: '136' }, 'b', NOW)).toMatchObject({ ok: true, call: { extension: '136' } });
  });

  it('refuses two different extensions (number and field), naming both, and keeps the ids for the record', () => {
    const parsed = parseCallJob({ callId: 'two-ext', campaignId: 'pushed', phoneNumber: '+16505550100 x136', extension: '137' }, 'j', NOW);
    expect(parsed).toMatchObject({ ok: false, callId: 'two-ext', campaignId: 'pushed' });
    expect(!parsed.ok && parsed.reason).toMatch(/extension 136 is not the job's extension field 137/);
  });

  it('still refuses a number that cannot be dialed, with the digits masked', () => {
    const parsed = parseCallJob({ phoneNumber: '+1 555 CALL-NOW' }, 'j', NOW);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.reason).toMatch(/^malformed call job: phoneNumber: not a valid phone number: "\*+"/);
  });

  it('reads a national number in DIAL_DEFAULT_REGION, as enqueue does, and refuses it without one', () => {
    expect(parseCallJob({ phone_number: '(415) 555-0130', campaign_id: 'pushed' }, 'n', NOW, 'US')).toMatchObject({
      ok: true,
      call: { phoneNumber: '+14155550130' },
    });
    expect(parseCallJob({ phone_number: '020 7946 0958 x12', campaign_id: 'pushed' }, 'g', NOW, 'GB')).toMatchObject({
      ok: true,
      call: { phoneNumber: '+442079460958', extension: '12' },
    });
    expect(parseCallJob({ phone_number: '(415) 555-0130', campaign_id: 'pushed' }, 'n', NOW).ok).toBe(false);
  });
});
