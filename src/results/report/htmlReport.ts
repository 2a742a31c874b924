/**
 * `dialer report --campaign ID --html out.html` (issue 12 §5): one self-contained page per campaign, for the team
 * running it. Everything is inline (CSS, a few lines of script, the chart as SVG) and a Content-Security-Policy meta
 * tag forbids every fetch, so the file opens from a mail attachment or a shared drive with no network and never calls
 * out. The rows are written as HTML (readable with scripts off); the script only filters them.
 *
 * Phone numbers are masked by default (`+1 ••••••0123`): a report file is forwarded and kept past the records'
 * retention, out of reach of `purge`, so it carries no more of a callee's number than the team needs to recognise a
 * call (country and last four digits, as logs show them); the call id, key and metadata join a row back to the list.
 * `numbers: 'full'` (`--full-numbers`) writes them whole, for a team that must call people back from the page.
 */
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { DateTime } from 'luxon';
import type { CampaignView } from '../../campaigns/campaignStore.js';
import type { CallRecord, CampaignCounters } from '../../core/callStore.js';
import type { Outcome } from '../../core/outcomes.js';
import { redactPhoneNumber, splitPhoneNumber } from '../../core/phone.js';
import { DAY, HOUR, MINUTE } from '../../core/time.js';
import { shownCampaignSettings } from './campaignSettings.js';
import { REPORT_OUTCOMES, endedAtMs, reportStats, type OutcomeTimeline, type ReportStats } from './reportStats.js';

/** Rows written into the page at most: past this a browser slows to a crawl on filtering; `--csv` has every call. */
export const MAX_HTML_ROWS = 20_000;
/** Digits of a masked number left visible (as logs show them: src/core/phone.ts redactPhoneNumber). */
const VISIBLE_TAIL_DIGITS = 4;

/** How phone numbers are written into the page (see the file's comment). */
export type NumberDisplay = 'masked' | 'full';

export interface HtmlReportInput {
  campaignId: string;
  counters: CampaignCounters;
  /** The campaign's records in enqueue order (every one: the figures are computed from them). */
  records: readonly CallRecord[];
  /** Idempotency keys by call id. */
  keys: ReadonlyMap<string, string>;
  /** The campaign object, when the campaign is defined (its settings are shown). */
  campaign: CampaignView | undefined;
  paused: boolean;
  /** Epoch ms, shown as "generated at". */
  generatedAt: number;
  /** IANA zone times are shown in (DIAL_TIME_ZONE). */
  timeZone: string;
  numbers: NumberDisplay;
  /** Rows written at most (MAX_HTML_ROWS). */
  maxRows?: number;
}

/** Colours per outcome, chosen to tell good (greens) from retryable (ambers) from dead ends (reds, greys). */
const OUTCOME_COLOURS: Record<Outcome, string> = {
  answered: '#2e9e4f',
  transferred: '#1f7a8c',
  voicemail: '#8e6bbf',
  no_answer: '#e6a23c',
  busy: '#d97a2b',
  declined: '#d0577b',
  invalid_number: '#8c6d4f',
  failed: '#c73e3a',
  skipped: '#9aa3ad',
  expired: '#b8bfc6',
  canceled: '#6b7680',
};

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text as HTML (element content and quoted attribute values alike). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** A number as the page shows it: masked to country code and last digits, or whole; ` x136` for an extension. */
export function reportNumber(stored: string, display: NumberDisplay): string {
  const { e164, extension } = splitPhoneNumber(stored);
  const ext = extension === undefined ? '' : ` x${extension}`;
  if (display === 'full') return `${e164}${ext}`;
  const parsed = parsePhoneNumberFromString(e164);
  if (!parsed) return redactPhoneNumber(e164);
  const national = String(parsed.nationalNumber);
  const hidden = Math.max(0, national.length - VISIBLE_TAIL_DIGITS);
  return `+${parsed.countryCallingCode} ${'•'.repeat(hidden)}${national.slice(hidden)}${ext}`;
}

const PERCENT_DIGITS = 1;
const fmtPercent = (p: number | undefined) => (p === undefined ? '—' : `${p.toFixed(PERCENT_DIGITS)} %`);
const fmtNumber = (n: number | undefined, digits = 1) => (n === undefined ? '—' : n.toFixed(digits));

/** Seconds as `m:ss` (or `h:mm:ss`). */
function fmtDuration(seconds: number | undefined): string {
  if (seconds === undefined) return '—';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The whole page (see the file's comment). */
export function renderHtmlReport(input: HtmlReportInput): string {
  const stats = reportStats(input.counters, input.records);
  const maxRows = input.maxRows ?? MAX_HTML_ROWS;
  const time = (ms: number | undefined, format = 'yyyy-LL-dd HH:mm:ss') =>
    ms === undefined || ms <= 0 ? '' : DateTime.fromMillis(ms, { zone: input.timeZone }).toFormat(format);
  const status = input.campaign ? input.campaign.status : input.paused ? 'paused' : stats.pending > 0 ? 'running' : 'done';
  const title = `Campaign ${input.campaignId}`;
  const shownRows = input.records.slice(0, maxRows);
  const rows = shownRows.map((r) => callRow(r, input, time)).join('\n');
  const cut = input.records.length > shownRows.length ? `<p class="note">The first ${shownRows.length} of ${input.records.length} calls on record are listed; <code>dialer report --campaign ${escapeHtml(input.campaignId)} --csv</code> lists every one.</p>` : '';
  const expired = stats.total > stats.recordsOnFile && input.records.length <= maxRows
    ? `<p class="note">${stats.total - stats.recordsOnFile} ended calls are counted in the totals but their records have expired (RECORD_RETENTION_DAYS): they have no line.</p>`
    : '';
  const outcomeOptions = REPORT_OUTCOMES.filter((o) => (stats.byOutcome[o] ?? 0) > 0)
    .map((o) => `<option value="${o}">${o}</option>`)
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="ai-dialer report --html">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}${input.campaign?.name ? ` <span class="name">${escapeHtml(input.campaign.name)}</span>` : ''}</h1>
<p class="meta"><span class="status status-${escapeHtml(status)}" id="status">${escapeHtml(status)}</span>
generated ${escapeHtml(time(input.generatedAt, 'yyyy-LL-dd HH:mm'))} (${escapeHtml(input.timeZone)})${stats.firstAttemptMs !== undefined ? ` · first call ${escapeHtml(time(stats.firstAttemptMs, 'yyyy-LL-dd HH:mm'))}` : ''}${stats.lastEndMs !== undefined ? ` · last end ${escapeHtml(time(stats.lastEndMs, 'yyyy-LL-dd HH:mm'))}` : ''}
· numbers ${input.numbers === 'full' ? 'shown in full' : 'masked (country and last 4 digits)'}</p>
</header>
<main>
${figures(stats)}
<section class="row">
${outcomeTable(stats)}
<div class="card chart-card"><h2>Outcomes over time</h2>${timelineSvg(stats.timeline, time)}</div>
</section>
${input.campaign ? settingsTable(input.campaign) : '<p class="note">No campaign object: this campaign runs with the global settings (DIAL_*).</p>'}
<section class="card" id="calls-card">
<h2>Calls</h2>
<div class="filters">
<input type="search" id="search" placeholder="Search number, call id, key, outcome, reason, metadata…" autocomplete="off" aria-label="Search calls">
<select id="outcome-filter" aria-label="Outcome"><option value="">every outcome</option>${outcomeOptions}${stats.pending > 0 ? '<option value="pending">pending</option>' : ''}</select>
<span id="shown-count" aria-live="polite">${shownRows.length} of ${shownRows.length} calls</span>
</div>
<table id="calls">
<thead><tr><th>call id</th><th>number</th><th>outcome</th><th>state</th><th class="num">attempts</th><th class="num">talk</th><th>ended</th><th>key</th><th>note</th><th>metadata</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
<p id="no-match" class="note" hidden>No call matches.</p>
${cut}${expired}
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function figures(stats: ReportStats): string {
  const tile = (id: string, label: string, value: string, sub = '') =>
    `<div class="tile" id="fig-${id}"><div class="label">${label}</div><div class="value">${escapeHtml(value)}</div><div class="sub">${escapeHtml(sub)}</div></div>`;
  const ended = stats.total - stats.pending;
  return `<section class="tiles">
${tile('total', 'calls', String(stats.total), `${ended} ended · ${stats.pending} pending`)}
${tile('pickup', 'pick-up rate', fmtPercent(stats.pickUp?.percent), stats.pickUp ? `${stats.pickUp.people} of ${stats.pickUp.dialed} dialed reached a person` : 'no dialed call ended yet')}
${tile('voicemail', 'voicemail', String(stats.voicemail.count), stats.voicemail.percent === undefined ? '' : `${fmtPercent(stats.voicemail.percent)} of dialed`)}
${tile('transfers', 'transfers', String(stats.transfers), 'handed to a person')}
${tile('talk', 'average talk time', fmtDuration(stats.averageTalkS), 'of connected calls')}
${tile('attempts', 'attempts per call', fmtNumber(stats.attemptsPerCall, 2), 'dialed calls that ended')}
${tile('rate', 'calls per hour', fmtNumber(stats.callsPerHour, 0), 'dialed calls ended, first call to last end')}
</section>`;
}

function outcomeTable(stats: ReportStats): string {
  const max = Math.max(1, ...REPORT_OUTCOMES.map((o) => stats.byOutcome[o] ?? 0), stats.pending);
  const line = (name: string, n: number, colour: string) =>
    `<tr data-outcome="${name}"><td><span class="swatch" style="background:${colour}"></span>${name}</td><td class="num">${n}</td><td class="bar-cell"><span class="bar" style="width:${((100 * n) / max).toFixed(1)}%;background:${colour}"></span></td></tr>`;
  const lines = REPORT_OUTCOMES.filter((o) => (stats.byOutcome[o] ?? 0) > 0).map((o) => line(o, stats.byOutcome[o] ?? 0, OUTCOME_COLOURS[o]));
  if (stats.pending > 0) lines.push(line('pending', stats.pending, '#d8dde2'));
  return `<div class="card outcomes-card"><h2>Outcomes</h2><table id="outcomes"><tbody>${lines.join('') || '<tr><td>no calls yet</td></tr>'}</tbody></table></div>`;
}

const CHART = { width: 640, height: 220, left: 36, right: 8, top: 10, bottom: 34 } as const;

/** A stacked bar per time step (ended calls by outcome); each bar part says what it counts on hover. */
function timelineSvg(timeline: OutcomeTimeline, time: (ms: number | undefined, format?: string) => string): string {
  if (timeline.buckets.length === 0) return '<p class="note">No call has ended yet.</p>';
  const plotW = CHART.width - CHART.left - CHART.right;
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const max = Math.max(...timeline.buckets.map((b) => b.total));
  const slot = plotW / timeline.buckets.length;
  const barW = Math.max(1, slot * 0.8);
  const format = timeline.stepMs >= DAY ? 'LL-dd' : timeline.stepMs >= HOUR ? 'LL-dd HH:mm' : 'HH:mm';
  const step = timeline.stepMs >= DAY ? `${timeline.stepMs / DAY} d` : timeline.stepMs >= HOUR ? `${timeline.stepMs / HOUR} h` : `${timeline.stepMs / MINUTE} min`;
  const parts: string[] = [];
  timeline.buckets.forEach((bucket, i) => {
    let y = CHART.top + plotH;
    const x = CHART.left + i * slot + (slot - barW) / 2;
    for (const outcome of REPORT_OUTCOMES) {
      const n = bucket.counts[outcome] ?? 0;
      if (n === 0) continue;
      const h = (plotH * n) / max;
      y -= h;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="${OUTCOME_COLOURS[outcome]}" data-outcome="${outcome}"><title>${escapeHtml(time(bucket.startMs, format))} · ${outcome}: ${n}</title></rect>`,
      );
    }
  });
  const axisY = CHART.top + plotH;
  const labels = [0, Math.floor((timeline.buckets.length - 1) / 2), timeline.buckets.length - 1]
    .filter((i, k, all) => all.indexOf(i) === k)
    .map((i) => {
      const bucket = timeline.buckets[i];
      const x = CHART.left + i * slot + slot / 2;
      return bucket ? `<text x="${x.toFixed(1)}" y="${axisY + 14}" text-anchor="middle">${escapeHtml(time(bucket.startMs, format))}</text>` : '';
    })
    .join('');
  const used = REPORT_OUTCOMES.filter((o) => timeline.buckets.some((b) => (b.counts[o] ?? 0) > 0));
  const legend = used.map((o) => `<span><span class="swatch" style="background:${OUTCOME_COLOURS[o]}"></span>${o}</span>`).join(' ');
  return `<svg id="timeline" viewBox="0 0 ${CHART.width} ${CHART.height}" role="img" aria-label="Ended calls by outcome, per ${step}" xmlns="http://www.w3.org/2000/svg">
<line x1="${CHART.left}" y1="${axisY}" x2="${CHART.width - CHART.right}" y2="${axisY}" stroke="#888"/>
<text x="${CHART.left - 4}" y="${CHART.top + 8}" text-anchor="end">${max}</text><text x="${CHART.left - 4}" y="${axisY}" text-anchor="end">0</text>
${parts.join('\n')}
${labels}
<text x="${CHART.width - CHART.right}" y="${CHART.height - 4}" text-anchor="end" class="axis-note">ended calls per ${step}</text>
</svg><div class="legend">${legend}</div>`;
}

function settingsTable(view: CampaignView): string {
  const settings = shownCampaignSettings(view);
  const lines = settings.map(([name, value]) => `<tr><th>${escapeHtml(name)}</th><td><code>${escapeHtml(value)}</code></td></tr>`).join('');
  return `<section class="card" id="settings"><h2>Settings</h2>${lines ? `<table>${lines}</table>` : '<p class="note">None of its own: the global settings (DIAL_*) apply.</p>'}</section>`;
}

/** One call line; `data-search` holds its searchable text, lower-cased (the masked number when numbers are masked). */
function callRow(record: CallRecord, input: HtmlReportInput, time: (ms: number | undefined) => string): string {
  const outcome = record.state === 'terminal' && record.outcome ? record.outcome : 'pending';
  const number = reportNumber(record.phoneNumber, input.numbers);
  const key = input.keys.get(record.callId) ?? '';
  const durationMs = record.details?.durationMs;
  const talk = durationMs === undefined ? '' : fmtDuration(durationMs / 1000);
  const note = callNote(record);
  const metadata = Object.entries(record.metadata)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join('; ');
  const searchDigits = input.numbers === 'full' ? number.replace(/\D/g, '') : '';
  const search = [record.callId, number, searchDigits, outcome, record.state, key, note, metadata].join(' ').toLowerCase();
  const colour = outcome === 'pending' ? '#d8dde2' : OUTCOME_COLOURS[outcome];
  const cells = [
    `<td class="id">${escapeHtml(record.callId)}</td>`,
    `<td class="number">${escapeHtml(number)}</td>`,
    `<td><span class="swatch" style="background:${colour}"></span>${outcome}</td>`,
    `<td>${escapeHtml(record.state.replace('_', ' '))}</td>`,
    `<td class="num">${record.attempts}</td>`,
    `<td class="num">${talk}</td>`,
    `<td class="time">${escapeHtml(time(endedAtMs(record)))}</td>`,
    `<td>${escapeHtml(key)}</td>`,
    `<td>${escapeHtml(note)}</td>`,
    `<td class="metadata">${escapeHtml(metadata)}</td>`,
  ];
  return `<tr data-outcome="${outcome}" data-search="${escapeHtml(search)}">${cells.join('')}</tr>`;
}

/** How a call ended in words: transfer target, survey answers, else its reason; while in flight, nothing. */
function callNote(record: CallRecord): string {
  if (record.state !== 'terminal') return '';
  const notes: string[] = [];
  const details = record.details;
  if (details?.transfer) notes.push(`${details.transfer.mode} transfer → ${details.transfer.target}`);
  if (details?.surveyAnswers?.length) notes.push(`survey: ${details.surveyAnswers.map((a) => a.answer).join(' | ')}`);
  if (record.reason && notes.length === 0) notes.push(record.reason);
  if (record.sipStatusCode && notes.length === 0) notes.push(`SIP ${record.sipStatusCode} ${record.sipStatus ?? ''}`.trim());
  return notes.join('; ');
}

const STYLE = `
:root{color-scheme:light;--fg:#1d232a;--muted:#5f6b76;--line:#e3e7eb;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{padding:18px 24px 6px}
h1{margin:0;font-size:22px}
h1 .name{font-weight:400;color:var(--muted)}
h2{margin:0 0 10px;font-size:15px}
.meta{margin:4px 0 0;color:var(--muted)}
.status{display:inline-block;padding:1px 8px;border-radius:10px;background:#dfe6ec;color:#223;font-weight:600;margin-right:6px}
.status-active,.status-running{background:#d5f0dc}.status-paused,.status-scheduled{background:#fdf0cf}
.status-canceled,.status-expired,.status-archived{background:#eee}
main{padding:8px 24px 32px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin-bottom:12px}
.tile,.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.tile .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.tile .value{font-size:26px;font-weight:650;margin:2px 0}
.tile .sub{color:var(--muted);font-size:12px;min-height:1em}
.row{display:grid;grid-template-columns:minmax(240px,1fr) 2fr;gap:10px;margin-bottom:12px}
@media (max-width:900px){.row{grid-template-columns:1fr}}
.card{margin-bottom:12px}
table{border-collapse:collapse;width:100%}
#outcomes td{padding:3px 6px}
.bar-cell{width:55%}.bar{display:inline-block;height:10px;border-radius:3px;vertical-align:middle}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
svg{width:100%;height:auto;font-size:11px;fill:#444}
.axis-note{fill:var(--muted)}
.legend{margin-top:4px;color:var(--muted);font-size:12px}.legend>span{margin-right:10px;white-space:nowrap}
#settings th{text-align:left;font-weight:600;padding:3px 12px 3px 0;width:180px;vertical-align:top}
#settings td{padding:3px 0}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,"DejaVu Sans Mono",monospace}
.filters{display:flex;gap:8px;align-items:center;margin-bottom:8px;flex-wrap:wrap}
#search{flex:1 1 320px;padding:7px 10px;border:1px solid #c9d1d8;border-radius:6px;font:inherit}
#outcome-filter{padding:6px;border:1px solid #c9d1d8;border-radius:6px;font:inherit}
#shown-count{color:var(--muted)}
#calls th{position:sticky;top:0;background:#fff;text-align:left;border-bottom:2px solid var(--line);padding:6px;font-size:12px;color:var(--muted)}
#calls td{border-bottom:1px solid var(--line);padding:5px 6px;vertical-align:top}
#calls tr[hidden]{display:none}
.num{text-align:right}
.id,.number,.time{font-family:ui-monospace,SFMono-Regular,Menlo,"DejaVu Sans Mono",monospace;font-size:12px;white-space:nowrap}
.metadata{color:var(--muted);font-size:12px}
.note{color:var(--muted)}
`;

/**
 * Filters the rows by every word typed (all must appear) and the outcome chosen. The search also comes from the
 * address' `#q=…` (and `&outcome=…`), so a filtered view can be linked; typing updates that address.
 */
const SCRIPT = `
(function () {
  var search = document.getElementById('search');
  var outcome = document.getElementById('outcome-filter');
  var count = document.getElementById('shown-count');
  var none = document.getElementById('no-match');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#calls tbody tr'));
  function apply() {
    var words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var wanted = outcome.value;
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.getAttribute('data-search') || '';
      var match = (!wanted || row.getAttribute('data-outcome') === wanted) && words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !match;
      if (match) shown += 1;
    });
    count.textContent = shown + ' of ' + rows.length + ' calls';
    none.hidden = shown !== 0 || rows.length === 0;
  }
  function fromAddress() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ''));
    search.value = params.get('q') || '';
    outcome.value = params.get('outcome') || '';
    apply();
  }
  function toAddress() {
    var params = new URLSearchParams();
    if (search.value) params.set('q', search.value);
    if (outcome.value) params.set('outcome', outcome.value);
    var hash = params.toString();
    // a page opened from disk may refuse history changes: the filter still works, only the address stays
    try { history.replaceState(null, '', hash ? '#' + hash : location.pathname + location.search); } catch (e) { /* see above */ }
  }
  search.addEventListener('input', function () { apply(); toAddress(); });
  outcome.addEventListener('change', function () { apply(); toAddress(); });
  window.addEventListener('hashchange', fromAddress);
  fromAddress();
})();
`;
