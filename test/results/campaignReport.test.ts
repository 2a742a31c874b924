import { describe, expect, it } from 'vitest';
import { attemptWasDialed, campaignReport, dialedAttemptCount, formatCampaignReport, pickUpRate, type CampaignReport, type ReportCall } from '../../src/results/campaignReport.js';
import { textTable } from '../../src/results/textTable.js';

/** A campaign's report from its counters: `undialed` ended calls never dialed (undefined: counters from before it). */
const report = (byOutcome: CampaignReport['byOutcome'], pending = 0, undialed?: number): CampaignReport => {
  const terminal = Object.values(byOutcome).reduce((a, b) => a + b, 0);
  return campaignReport('c', { total: terminal + pending, terminal, byOutcome, ...(undialed === undefined ? {} : { undialed }) }, []);
};

describe('the campaign report table', () => {
  it('shows the pick-up rate: people reached over the ended calls dialed at least once, voicemail not a pick-up', () => {
    // 19 ended: 10 never dialed (5 skipped, 2 canceled, 1 expired, and 2 of the 3 failed: before any attempt)
    const mixed = report({ answered: 3, transferred: 1, voicemail: 2, busy: 1, no_answer: 1, failed: 3, skipped: 5, canceled: 2, expired: 1 }, 0, 10);
    expect(mixed.pickUp).toEqual({ percent: (100 * 4) / 9, people: 4, dialed: 9 });
    expect(formatCampaignReport(mixed)).toContain('pick-up rate 44.4 % (4 of 9 dialed calls reached a person; voicemail does not count)');
  });

  it('falls back, for counters kept before undialed calls were counted, to leaving out the outcomes that never ring', () => {
    const old = report({ answered: 3, transferred: 1, voicemail: 2, busy: 1, no_answer: 1, skipped: 5, canceled: 2, expired: 1 });
    expect(pickUpRate({ byOutcome: old.byOutcome, terminal: 16 })).toEqual({ percent: 50, people: 4, dialed: 8 });
    expect(old.pickUp).toEqual({ percent: 50, people: 4, dialed: 8 });
  });

  it('has no pick-up rate before any dialed call has ended, and says when the campaign is paused', () => {
    const waiting = report({ skipped: 1, failed: 1 }, 3, 2);
    expect(waiting.pickUp).toBeUndefined();
    const table = formatCampaignReport(waiting, [], 50, { paused: true });
    expect(table).not.toContain('pick-up rate');
    expect(table.split('\n')[0]).toBe('Campaign c: 5 calls, 3 pending (paused: resume with `dialer resume`)');
  });
});

describe('the campaign report call table', () => {
  const call = (over: Partial<ReportCall>): ReportCall => ({ callId: 'c-1', phoneNumber: '+14155550101', outcome: 'answered', state: 'terminal', attempts: 1, metadata: {}, enqueuedAt: '', ...over });
  /** Where each column of the header starts (left-aligned ones) or ends (attempts, right-aligned). */
  const columns = (header: string) => ({
    number: header.indexOf('number'),
    outcome: header.indexOf('outcome'),
    attemptsEnd: header.indexOf('attempts') + 'attempts'.length,
    sip: header.indexOf('sip'),
  });

  it('keeps every column aligned whatever a cell holds: a number with an extension, a long call id or SIP status', () => {
    const calls = [
      call({ callId: 'c-short' }),
      call({ callId: 'c-ext', phoneNumber: '+16505550100', extension: '123456789012345', outcome: 'busy', attempts: 3, sipStatusCode: 486, sipStatus: 'Busy Here' }),
      call({ callId: `k-${'a'.repeat(60)}`, outcome: 'no_answer', attempts: 12, sipStatusCode: 480, sipStatus: 'Temporarily Unavailable (callee roaming)' }),
      call({ callId: 'c-pending', outcome: 'pending', state: 'queued', attempts: 0 }),
    ];
    const table = formatCampaignReport({ campaign: 'c', total: 4, pending: 1, byOutcome: { answered: 1, busy: 1, no_answer: 1 }, calls });
    const lines = table.split('\n');
    const headerAt = lines.findIndex((l) => l.includes('call id'));
    const header = lines[headerAt] ?? '';
    const at = columns(header);
    const rows = lines.slice(headerAt + 1, headerAt + 1 + calls.length);
    expect(rows).toHaveLength(calls.length);
    calls.forEach((c, i) => {
      const row = rows[i] ?? '';
      const number = c.extension === undefined ? c.phoneNumber : `${c.phoneNumber} x${c.extension}`;
      expect(row.slice(at.number, at.number + number.length), row).toBe(number);
      expect(row.slice(at.outcome, at.outcome + c.outcome.length), row).toBe(c.outcome);
      expect(row.slice(0, at.attemptsEnd).trimEnd().endsWith(` ${c.attempts}`), row).toBe(true);
      if (c.sipStatusCode !== undefined) expect(row.slice(at.sip).startsWith(`${c.sipStatusCode} ${c.sipStatus ?? ''}`), row).toBe(true);
      // a column's cell is followed by at least one space before the next column
      expect(row[at.outcome - 1], row).toBe(' ');
      expect(row[at.number - 1], row).toBe(' ');
    });
  });

  it('is no wider than its widest cells need (short ids and numbers give a narrow table)', () => {
    const table = formatCampaignReport({ campaign: 'c', total: 1, pending: 0, byOutcome: { answered: 1 }, calls: [call({})] });
    const header = table.split('\n').find((l) => l.includes('call id')) ?? '';
    expect(header.indexOf('number')).toBeLessThan(20);
  });
});


describe('textTable', () => {
  it('makes each column as wide as its widest cell, right-aligns counts, and leaves no trailing spaces', () => {
    const lines = textTable(
      [
        ['campaign', 'calls', ''],
        ['a', '123456789012', 'paused'],
        ['a-much-longer-name', '7', ''],
      ],
      ['left', 'right', 'left'],
    );
    expect(lines).toEqual(['campaign                   calls', 'a                   123456789012  paused', 'a-much-longer-name             7']);
  });
});

describe("a call's attempts in the report", () => {
  const entry = (attempt: number, result?: string) => ({ attempt, room: `r-${attempt}`, startedAt: 1, ...(result === undefined ? {} : { result }) });

  it('counts an attempt logged twice (a LiveKit error, then its dial) once, and the LiveKit error as not dialed', () => {
    const record = { dialSentAttempt: 1, attemptLog: [entry(1, 'platform_error'), entry(1, 'answered')] };
    expect(dialedAttemptCount(record)).toBe(1);
    expect(record.attemptLog.map((e) => attemptWasDialed(record, e))).toEqual([false, true]);
  });

  it('counts dials that went out: ended with a far-end result, or still open and marked sent; not one waiting for its slot', () => {
    expect(dialedAttemptCount({ dialSentAttempt: 3, attemptLog: [entry(1, 'busy'), entry(2, 'no_answer'), entry(3)] })).toBe(3);
    expect(dialedAttemptCount({ dialSentAttempt: 1, attemptLog: [entry(1, 'busy'), entry(2)] })).toBe(1);
    expect(dialedAttemptCount({ attemptLog: [entry(1, 'not_started'), entry(1)] })).toBe(0);
  });
});
