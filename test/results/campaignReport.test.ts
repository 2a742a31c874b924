import { describe, expect, it } from 'vitest';
import { formatCampaignReport, pickUpRate, type CampaignReport } from '../../src/results/campaignReport.js';

const report = (byOutcome: CampaignReport['byOutcome'], pending = 0): CampaignReport => ({
  campaign: 'c',
  total: Object.values(byOutcome).reduce((a, b) => a + b, 0) + pending,
  pending,
  byOutcome,
  calls: [],
});

describe('the campaign report table', () => {
  it('shows the pick-up rate: people reached over dialed calls, voicemail not a pick-up, calls never dialed left out', () => {
    const mixed = report({ answered: 3, transferred: 1, voicemail: 2, busy: 1, no_answer: 1, skipped: 5, canceled: 2, expired: 1 });
    expect(pickUpRate(mixed)).toEqual({ percent: 50, people: 4, dialed: 8 });
    expect(formatCampaignReport(mixed)).toContain('pick-up rate 50.0 % (4 of 8 dialed calls reached a person; voicemail does not count)');
  });

  it('has no pick-up rate before any dialed call has ended, and says when the campaign is paused', () => {
    const waiting = report({ skipped: 1 }, 3);
    expect(pickUpRate(waiting)).toBeUndefined();
    const table = formatCampaignReport(waiting, [], 50, { paused: true });
    expect(table).not.toContain('pick-up rate');
    expect(table.split('\n')[0]).toBe('Campaign c: 4 calls, 3 pending (paused: resume with `dialer resume`)');
  });
});
