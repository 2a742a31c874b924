import type { CallRecord, CallStore, CampaignCounters } from '../core/callStore.js';
import { NOT_DIALED_OUTCOMES, OUTCOMES, PERSON_OUTCOMES, type CallResult, type Outcome } from '../core/outcomes.js';

const PERCENT = 100;

/** One call line of `report --json` (the outside contract: exactly these fields). */
export interface ReportCall {
  callId: string;
  phoneNumber: string;
  outcome: Outcome | 'pending';
  attempts: number;
  sipStatusCode?: number;
  sipStatus?: string;
}

/** The `report --json` object: the outside contract. */
export interface CampaignReport {
  campaign: string;
  total: number;
  pending: number;
  byOutcome: Partial<Record<Outcome, number>>;
  calls: ReportCall[];
}

/**
 * Builds the report from counters and records; calls still in flight count as pending, never lost. A call whose record
 * expired (RECORD_RETENTION_DAYS) still counts under its outcome in the totals, not as pending; it has no line.
 */
export function campaignReport(campaignId: string, counters: CampaignCounters, records: readonly CallRecord[]): CampaignReport {
  return {
    campaign: campaignId,
    total: counters.total,
    pending: Math.max(0, counters.total - counters.terminal),
    byOutcome: counters.byOutcome,
    calls: records.map((r) => {
      const call: ReportCall = {
        callId: r.callId,
        phoneNumber: r.phoneNumber,
        outcome: r.state === 'terminal' && r.outcome ? r.outcome : 'pending',
        attempts: r.attempts,
      };
      if (r.sipStatusCode !== undefined) call.sipStatusCode = r.sipStatusCode;
      if (r.sipStatus) call.sipStatus = r.sipStatus;
      return call;
    }),
  };
}

/** Reads a campaign's counters and records and builds its report. */
export async function buildCampaignReport(store: CallStore, campaignId: string): Promise<CampaignReport> {
  const [counters, records] = await Promise.all([store.counters(campaignId), store.list(campaignId)]);
  return campaignReport(campaignId, counters, records);
}

/** The terminal records as the results they were built from (for exports such as the survey CSV). */
export function recordsAsResults(records: readonly CallRecord[]): CallResult[] {
  return records.flatMap((r) =>
    r.state === 'terminal' && r.outcome
      ? [{ ...r.details, callId: r.callId, campaignId: r.campaignId, outcome: r.outcome, reason: r.reason, reportedBy: r.details?.reportedBy ?? 'consumer', endedAt: r.updatedAt }]
      : [],
  );
}

/** A short human note on how a call ended: state while in flight, transfer target, survey answers, reason. */
function callNote(record: CallRecord): string {
  if (record.state !== 'terminal') return record.state.replace('_', ' ');
  const notes: string[] = [];
  const details = record.details;
  if (details?.transfer) notes.push(`${details.transfer.mode} transfer → ${details.transfer.target}`);
  if (details?.surveyAnswers?.length) notes.push(`survey: ${details.surveyAnswers.map((a) => a.answer).join(' | ')}`);
  if (record.reason && notes.length === 0) notes.push(record.reason);
  return notes.join('; ');
}

/** Renders the report as a table for a terminal: totals per outcome, then one line per call (capped). */
/** Share of the ended, dialed calls a person picked up (voicemail excluded, as dialers count it); undefined before any. */
export function pickUpRate(report: Pick<CampaignReport, 'byOutcome'>): { percent: number; people: number; dialed: number } | undefined {
  const count = (outcomes: readonly Outcome[]) => outcomes.reduce((sum, o) => sum + (report.byOutcome[o] ?? 0), 0);
  const dialed = count(OUTCOMES) - count(NOT_DIALED_OUTCOMES);
  if (dialed === 0) return undefined;
  const people = count(PERSON_OUTCOMES);
  return { percent: (PERCENT * people) / dialed, people, dialed };
}

export function formatCampaignReport(
  report: CampaignReport,
  records: readonly CallRecord[] = [],
  maxCallLines = 50,
  state: { paused?: boolean } = {},
): string {
  const lines: string[] = [];
  const byId = new Map(records.map((r) => [r.callId, r]));
  lines.push(`Campaign ${report.campaign}: ${report.total} calls, ${report.pending} pending${state.paused ? ' (paused: resume with `dialer resume`)' : ''}`);
  const width = Math.max(...OUTCOMES.map((o) => o.length), 'pending'.length);
  for (const outcome of OUTCOMES) {
    const n = report.byOutcome[outcome];
    if (n) lines.push(`  ${outcome.padEnd(width)}  ${String(n).padStart(6)}`);
  }
  if (report.pending > 0) lines.push(`  ${'pending'.padEnd(width)}  ${String(report.pending).padStart(6)}`);
  const rate = pickUpRate(report);
  if (rate) lines.push(`  pick-up rate ${rate.percent.toFixed(1)} % (${rate.people} of ${rate.dialed} dialed calls reached a person; voicemail does not count)`);
  if (report.calls.length > 0) {
    lines.push('');
    lines.push(`  ${'call id'.padEnd(40)} ${'number'.padEnd(16)} ${'outcome'.padEnd(width)} attempts  ${'sip'.padEnd(20)} note`);
    for (const call of report.calls.slice(0, maxCallLines)) {
      const sip = call.sipStatusCode ? `${call.sipStatusCode} ${call.sipStatus ?? ''}`.trim() : '';
      const record = byId.get(call.callId);
      const note = record ? callNote(record) : '';
      lines.push(
        `  ${call.callId.padEnd(40)} ${call.phoneNumber.padEnd(16)} ${call.outcome.padEnd(width)} ${String(call.attempts).padStart(8)}  ${sip.padEnd(20)} ${note}`.trimEnd(),
      );
    }
    const more = report.total - Math.min(report.calls.length, maxCallLines);
    if (more > 0) lines.push(`  … ${more} more not shown (--json lists every call still on record)`);
  }
  return lines.join('\n');
}
