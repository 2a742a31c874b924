import type { CallStore } from '../core/callStore.js';
import { OUTCOMES, type Outcome } from '../core/outcomes.js';

/** One call line of a report (`report --json` prints these under `calls`). */
export interface ReportCall {
  callId: string;
  phoneNumber: string;
  outcome: Outcome | 'pending';
  attempts: number;
  sipStatusCode?: number;
  sipStatus?: string;
  state?: string;
  reason?: string;
}

/** The `report --json` object: the outside contract. */
export interface CampaignReport {
  campaign: string;
  total: number;
  pending: number;
  byOutcome: Partial<Record<Outcome, number>>;
  calls: ReportCall[];
}

/** Builds a campaign's report from its counters and records; calls still in flight count as pending, never lost. */
export async function buildCampaignReport(store: CallStore, campaignId: string, options: { withCalls?: boolean } = {}): Promise<CampaignReport> {
  const counters = await store.counters(campaignId);
  const records = options.withCalls === false ? [] : await store.list(campaignId);
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
      if (r.state !== 'terminal') call.state = r.state;
      if (r.reason) call.reason = r.reason;
      return call;
    }),
  };
}

/** Renders the report as a table for a terminal: totals per outcome, then one line per call (capped). */
export function formatCampaignReport(report: CampaignReport, maxCallLines = 50): string {
  const lines: string[] = [];
  lines.push(`Campaign ${report.campaign}: ${report.total} calls, ${report.pending} pending`);
  const width = Math.max(...OUTCOMES.map((o) => o.length), 'pending'.length);
  for (const outcome of OUTCOMES) {
    const n = report.byOutcome[outcome];
    if (n) lines.push(`  ${outcome.padEnd(width)}  ${String(n).padStart(6)}`);
  }
  if (report.pending > 0) lines.push(`  ${'pending'.padEnd(width)}  ${String(report.pending).padStart(6)}`);
  if (report.calls.length > 0) {
    lines.push('');
    lines.push(`  ${'call id'.padEnd(40)} ${'number'.padEnd(16)} ${'outcome'.padEnd(width)} attempts  sip`);
    for (const call of report.calls.slice(0, maxCallLines)) {
      const sip = call.sipStatusCode ? `${call.sipStatusCode} ${call.sipStatus ?? ''}`.trim() : '';
      lines.push(`  ${call.callId.padEnd(40)} ${call.phoneNumber.padEnd(16)} ${call.outcome.padEnd(width)} ${String(call.attempts).padStart(8)}  ${sip}`);
    }
    if (report.calls.length > maxCallLines) lines.push(`  … ${report.calls.length - maxCallLines} more (use --json for all)`);
  }
  return lines.join('\n');
}
