import { csvCell } from './surveyCsv.js';
import type { AttemptEntry, CallRecord, CallStore, CampaignCounters } from '../core/callStore.js';
import type { CallTimes } from '../core/callTimes.js';
import { NOT_DIALED_OUTCOMES, OUTCOMES, PERSON_OUTCOMES, type CallResult, type CallState, type Outcome, type SurveyAnswer } from '../core/outcomes.js';
import { splitPhoneNumber } from '../core/phone.js';
import { textTable } from './textTable.js';

const PERCENT = 100;

/**
 * One call line of `report --json`: everything needed to match the call back to the list it came from (number,
 * extension, key, the metadata it was enqueued with) and to see how it went. Times are ISO 8601 (UTC); optional
 * fields are left out when the call has none.
 */
export interface ReportCall {
  callId: string;
  /** E.164. */
  phoneNumber: string;
  /** Extension digits dialed after the answer. */
  extension?: string;
  /** The idempotency key it was enqueued with (`--key`, or the CSV `key` column). */
  key?: string;
  outcome: Outcome | 'pending';
  /** Where the call is: queued, dialing, waiting_retry, in_call, or terminal. */
  state: CallState;
  /**
   * Attempts whose dial went out (the number was dialed that many times; dialedAttemptCount). An attempt begun but
   * never sent (canceled while it waited for its CPS slot, LiveKit failing first) does not count; `dialer call` lists it.
   */
  attempts: number;
  sipStatusCode?: number;
  sipStatus?: string;
  /** How it ended, in words (agent ended the call, 486 Busy Here on every attempt …). */
  reason?: string;
  /** The metadata (CSV columns) it was enqueued with, as given. */
  metadata: Record<string, unknown>;
  enqueuedAt: string;
  /**
   * While the call has not ended and its job waits for a time (a start time, a move, a retry delay): when it comes up.
   * The API's `due_at`.
   */
  dueAt?: string;
  /** While the call has not ended: when it ends `expired` if not dialed by then (its `--expires-at`; the API's `expires_at`). */
  expiresAt?: string;
  /** When its first and latest dialed attempts started (attempts that never went out are not counted, as in `attempts`). */
  firstAttemptAt?: string;
  lastAttemptAt?: string;
  endedAt?: string;
  /** Seconds the callee was connected (the agent's measure). */
  durationS?: number;
  transfer?: { mode: string; target: string };
  surveyAnswers?: SurveyAnswer[];
  summary?: string;
}

/** The `report --json` object: the outside contract. */
export interface CampaignReport {
  campaign: string;
  total: number;
  pending: number;
  byOutcome: Partial<Record<Outcome, number>>;
  /** People reached over the ended calls dialed at least once (pickUpRate); left out before any dialed call ended. */
  pickUp?: PickUpRate;
  calls: ReportCall[];
}

/**
 * Builds the report from counters and records; calls still in flight count as pending, never lost. A call whose record
 * expired (RECORD_RETENTION_DAYS) still counts under its outcome in the totals, not as pending; it has no line.
 * `keys` are the calls' idempotency keys and `times` when calls not ended come up and expire, by call id.
 */
export function campaignReport(
  campaignId: string,
  counters: CampaignCounters,
  records: readonly CallRecord[],
  keys: ReadonlyMap<string, string> = new Map(),
  times: ReadonlyMap<string, CallTimes> = new Map(),
): CampaignReport {
  const pickUp = pickUpRate(counters);
  return {
    campaign: campaignId,
    total: counters.total,
    pending: Math.max(0, counters.total - counters.terminal),
    byOutcome: counters.byOutcome,
    ...(pickUp ? { pickUp } : {}),
    calls: records.map((r) => reportCall(r, keys.get(r.callId), times.get(r.callId))),
  };
}

const iso = (ms: number | undefined) => (ms === undefined || ms <= 0 ? undefined : new Date(ms).toISOString());
const MS_PER_S = 1000;

/**
 * One record as a report line (see ReportCall); `key` is the idempotency key it was enqueued with, if any, and `times`
 * what its dial job says of when it comes up and expires (callTimes; shown only while the call has not ended).
 */
export function reportCall(r: CallRecord, key?: string, times: CallTimes = {}): ReportCall {
  const { e164, extension } = splitPhoneNumber(r.phoneNumber);
  const ended = r.state === 'terminal' && r.outcome ? r.outcome : undefined;
  const details = r.details ?? {};
  const dialed = r.attemptLog.filter((entry) => attemptWasDialed(r, entry));
  const call: ReportCall = { callId: r.callId, phoneNumber: e164, outcome: ended ?? 'pending', state: r.state, attempts: dialedAttemptCount(r), metadata: r.metadata, enqueuedAt: iso(r.createdAt) ?? '' };
  const optional: Partial<ReportCall> = {
    extension,
    key,
    sipStatusCode: r.sipStatusCode,
    sipStatus: r.sipStatus,
    reason: r.reason,
    // an ended call's job may linger (a retry's delayed job a cancel could not remove): its times are no longer the call's
    dueAt: r.state === 'terminal' ? undefined : iso(times.dueAt),
    expiresAt: r.state === 'terminal' ? undefined : iso(times.expiresAt),
    firstAttemptAt: iso(dialed[0]?.startedAt),
    lastAttemptAt: iso(dialed.at(-1)?.startedAt),
    endedAt: ended ? iso(r.endedAt ?? r.updatedAt) : undefined,
    durationS: details.durationMs === undefined ? undefined : Math.round(details.durationMs / (MS_PER_S / 10)) / 10,
    transfer: details.transfer ? { mode: details.transfer.mode, target: details.transfer.target } : undefined,
    surveyAnswers: details.surveyAnswers?.length ? details.surveyAnswers : undefined,
    summary: details.summary,
  };
  for (const [field, value] of Object.entries(optional)) {
    if (value !== undefined && value !== '') Object.assign(call, { [field]: value });
  }
  return call;
}

/** Columns of `report --csv` before the metadata and survey columns, in order. */
export const CAMPAIGN_CSV_COLUMNS = [
  'call_id',
  'campaign_id',
  'phone_number',
  'extension',
  'key',
  'outcome',
  'state',
  'reason',
  'attempts',
  'sip_status_code',
  'sip_status',
  'enqueued_at',
  'first_attempt_at',
  'last_attempt_at',
  'ended_at',
  'duration_s',
  'transfer',
  'summary',
] as const;

/**
 * The campaign as CSV (RFC 4180, CRLF), one row per call, pending calls included: the fixed columns above, then one
 * column per metadata field the calls were enqueued with (the input list's own columns, echoed back so results can be
 * joined to it; a name taken by a fixed column gets a `metadata.` prefix), then one column per survey question (in
 * order of appearance). Free text is guarded against spreadsheet formulas (csvCell); E.164 numbers are written as is.
 */
export function campaignCsv(report: CampaignReport, eol = '\r\n'): string {
  const fixed = new Set<string>(CAMPAIGN_CSV_COLUMNS);
  const metadataColumns: string[] = [];
  const questions: string[] = [];
  for (const call of report.calls) {
    for (const name of Object.keys(call.metadata)) if (!metadataColumns.includes(name)) metadataColumns.push(name);
    for (const { question } of call.surveyAnswers ?? []) if (!questions.includes(question)) questions.push(question);
  }
  const taken = new Set<string>([...fixed, ...metadataColumns]);
  const header = [
    ...CAMPAIGN_CSV_COLUMNS,
    ...metadataColumns.map((name) => (fixed.has(name) ? `metadata.${name}` : name)),
    ...questions.map((q) => (taken.has(q) ? `survey.${q}` : q)),
  ];
  const text = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'string' ? v : String(v));
  const rows = report.calls.map((c) => {
    const answers = new Map((c.surveyAnswers ?? []).map((a) => [a.question, a.answer]));
    const values: Record<(typeof CAMPAIGN_CSV_COLUMNS)[number], string> = {
      call_id: c.callId,
      campaign_id: report.campaign,
      phone_number: c.phoneNumber,
      extension: text(c.extension),
      key: text(c.key),
      outcome: c.outcome,
      state: c.state,
      reason: text(c.reason),
      attempts: String(c.attempts),
      sip_status_code: text(c.sipStatusCode),
      sip_status: text(c.sipStatus),
      enqueued_at: c.enqueuedAt,
      first_attempt_at: text(c.firstAttemptAt),
      last_attempt_at: text(c.lastAttemptAt),
      ended_at: text(c.endedAt),
      duration_s: text(c.durationS),
      transfer: c.transfer ? `${c.transfer.mode} ${c.transfer.target}` : '',
      summary: text(c.summary),
    };
    const cells = [
      ...CAMPAIGN_CSV_COLUMNS.map((col) => (col === 'phone_number' ? values[col] : csvCell(values[col]))),
      ...metadataColumns.map((name) => csvCell(text(c.metadata[name]))),
      ...questions.map((q) => csvCell(answers.get(q) ?? '')),
    ];
    return cells.join(',');
  });
  return [header.map(csvCell).join(','), ...rows].join(eol) + eol;
}

/** Reads a campaign's counters and records and builds its report. */
export async function buildCampaignReport(store: CallStore, campaignId: string): Promise<CampaignReport> {
  const [counters, records] = await Promise.all([store.counters(campaignId), store.list(campaignId)]);
  return campaignReport(campaignId, counters, records, await store.idempotencyKeys(campaignId, records.map((r) => r.callId)));
}

/** The terminal records as the results they were built from (for exports such as the survey CSV). */
export function recordsAsResults(records: readonly CallRecord[]): CallResult[] {
  return records.flatMap((r) =>
    r.state === 'terminal' && r.outcome
      ? [{ ...r.details, callId: r.callId, campaignId: r.campaignId, outcome: r.outcome, reason: r.reason, reportedBy: r.details?.reportedBy ?? 'consumer', endedAt: r.updatedAt }]
      : [],
  );
}

/** A report line's number as people read it: E.164, then ` x136` for an extension. */
export function shownNumber(call: Pick<ReportCall, 'phoneNumber' | 'extension'>): string {
  return call.extension === undefined ? call.phoneNumber : `${call.phoneNumber} x${call.extension}`;
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

/** The pick-up rate: people reached (answered, transferred) over the ended calls dialed at least once, in %. */
export interface PickUpRate {
  percent: number;
  people: number;
  dialed: number;
}

/**
 * The pick-up rate of a campaign, from its counters (so calls whose records expired count too): people reached over
 * the ended calls that were dialed at least once. Voicemail is not a pick-up; a call that ended before any dial went
 * out (canceled, expired, skipped, failed before an attempt or after LiveKit errors only) is left out of both. The one
 * computation behind `report`, `report --json`, the HTML report and the API's report. Counters from before the
 * `undialed` count was kept fall back to leaving out the outcomes that never ring (NOT_DIALED_OUTCOMES). Undefined
 * before any dialed call has ended.
 */
export function pickUpRate(counters: Pick<CampaignCounters, 'byOutcome' | 'terminal' | 'undialed'>): PickUpRate | undefined {
  const count = (outcomes: readonly Outcome[]) => outcomes.reduce((sum, o) => sum + (counters.byOutcome[o] ?? 0), 0);
  const dialed = counters.undialed === undefined ? count(OUTCOMES) - count(NOT_DIALED_OUTCOMES) : counters.terminal - counters.undialed;
  if (dialed <= 0) return undefined;
  const people = count(PERSON_OUTCOMES);
  return { percent: (PERCENT * people) / dialed, people, dialed };
}

/** Attempt results that mean no dial went out (a drain gave the slot back; LiveKit failed first). */
const UNDIALED_RESULTS: readonly string[] = ['not_started', 'platform_error'];

/**
 * Whether log entry `entry` of `record` went out to the carrier. An ended entry says so by its result: anything but
 * "never sent" (a drain gave the slot back, LiveKit failed first: the attempt is then tried again under the same
 * number, in a new entry). An entry still open went out when its attempt is the one marked sent (claimDial).
 */
export function attemptWasDialed(record: Pick<CallRecord, 'dialSentAttempt'>, entry: Pick<AttemptEntry, 'attempt' | 'result'>): boolean {
  return entry.result === undefined ? record.dialSentAttempt === entry.attempt : !UNDIALED_RESULTS.includes(entry.result);
}

/**
 * How many of the call's attempts went out (attemptWasDialed): the number of times its phone was dialed. An attempt
 * logged twice (a platform error, then its dial) counts once.
 */
export function dialedAttemptCount(record: Pick<CallRecord, 'dialSentAttempt' | 'attemptLog'>): number {
  return new Set(record.attemptLog.filter((entry) => attemptWasDialed(record, entry)).map((entry) => entry.attempt)).size;
}

/** Whether an ended call was dialed at least once, as its record says (records from before that: by its outcome). */
export function wasDialed(record: Pick<CallRecord, 'dialed' | 'outcome'>): boolean {
  return record.dialed ?? (record.outcome !== undefined && !NOT_DIALED_OUTCOMES.includes(record.outcome));
}

/** Renders the report as a table for a terminal: totals per outcome, then one line per call (capped). */
export function formatCampaignReport(
  report: CampaignReport,
  records: readonly CallRecord[] = [],
  maxCallLines = 50,
  state: { paused?: boolean } = {},
): string {
  const lines: string[] = [];
  const byId = new Map(records.map((r) => [r.callId, r]));
  lines.push(`Campaign ${report.campaign}: ${report.total} calls, ${report.pending} pending${state.paused ? ' (paused: resume with `dialer resume`)' : ''}`);
  const counts = OUTCOMES.flatMap((outcome) => (report.byOutcome[outcome] ? [[outcome, String(report.byOutcome[outcome])]] : []));
  if (report.pending > 0) counts.push(['pending', String(report.pending)]);
  // names to the left, counts to the right, both as wide as the widest (a 10-million count stays in line too)
  lines.push(...textTable(counts, ['left', 'right'], '  '));
  const rate = report.pickUp;
  if (rate) lines.push(`  pick-up rate ${rate.percent.toFixed(1)} % (${rate.people} of ${rate.dialed} dialed calls reached a person; voicemail does not count)`);
  if (report.calls.length > 0) {
    lines.push('');
    const rows = report.calls.slice(0, maxCallLines).map((call) => {
      const sip = call.sipStatusCode ? `${call.sipStatusCode} ${call.sipStatus ?? ''}`.trim() : '';
      const record = byId.get(call.callId);
      return [call.callId, shownNumber(call), call.outcome, String(call.attempts), sip, record ? callNote(record) : ''];
    });
    // every column as wide as its widest cell: a number with an extension or a long SIP status keeps the rows in line
    lines.push(...textTable([['call id', 'number', 'outcome', 'attempts', 'sip', 'note'], ...rows], ['left', 'left', 'left', 'right', 'left', 'left'], '  '));
    const more = report.total - Math.min(report.calls.length, maxCallLines);
    if (more > 0) lines.push(`  … ${more} more not shown (--json lists every call still on record)`);
  }
  return lines.join('\n');
}
