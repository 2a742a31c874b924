import type { CallResult } from '../core/outcomes.js';

export interface SurveyCsvOptions {
  /** Question columns, in this order; by default every question found in the results, in order of appearance. */
  questions?: readonly string[];
  /** Line ending (default CRLF, as RFC 4180 and spreadsheet programs expect). */
  eol?: string;
}

const FIXED_COLUMNS = ['call_id', 'campaign_id', 'outcome', 'reason', 'duration_s', 'answered_questions'] as const;

/**
 * A cell as RFC 4180 wants it: quoted when it holds a comma, quote or line break. Answers are the callee's words, so a
 * cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR at the start) is prefixed with a single quote.
 */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/**
 * A survey campaign's report as CSV: one row per call, one column per question (empty when unanswered), plus the
 * call's id, outcome, reason and duration, so calls that reached voicemail or were never answered still show up.
 */
export function surveyCsv(results: readonly CallResult[], options: SurveyCsvOptions = {}): string {
  const questions = options.questions ? [...options.questions] : [];
  if (!options.questions) {
    for (const result of results) {
      for (const { question } of result.surveyAnswers ?? []) if (!questions.includes(question)) questions.push(question);
    }
  }
  const eol = options.eol ?? '\r\n';
  const header = [...FIXED_COLUMNS, ...questions].map(csvCell).join(',');
  const rows = results.map((result) => {
    const answers = new Map((result.surveyAnswers ?? []).map((a) => [a.question, a.answer]));
    const fixed = [
      result.callId,
      result.campaignId,
      result.outcome,
      result.reason ?? '',
      result.durationMs === undefined ? '' : (result.durationMs / 1000).toFixed(1),
      String(questions.filter((q) => answers.has(q)).length),
    ];
    return [...fixed, ...questions.map((q) => answers.get(q) ?? '')].map(csvCell).join(',');
  });
  return [header, ...rows].join(eol) + eol;
}
