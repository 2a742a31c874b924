/** The caps on a result's free text and transcript (callResultSchema): cut with a visible marker, stable when applied twice. */
import { describe, expect, it } from 'vitest';
import {
  MAX_REASON_CHARS,
  MAX_SURVEY_ANSWERS,
  MAX_TRANSCRIPT_BYTES,
  MAX_TRANSCRIPT_LINE_CHARS,
  MAX_TRANSCRIPT_LINES,
  callResultSchema,
  capText,
  capTranscript,
  type TranscriptLine,
} from '../../src/core/outcomes.js';

const base = { callId: 'c-1', campaignId: 'limits', outcome: 'answered', reportedBy: 'agent', endedAt: 1 } as const;
const bytesOf = (lines: readonly TranscriptLine[]) => lines.reduce((sum, l) => sum + Buffer.byteLength(l.text), 0);

describe('result size caps', () => {
  it('leaves a result within its caps as it is', () => {
    const transcript: TranscriptLine[] = [
      { role: 'agent', text: 'Hello, this is Acme.' },
      { role: 'callee', text: 'Hi.' },
    ];
    const parsed = callResultSchema.parse({ ...base, reason: 'agent ended the call', summary: 'short', transcript });
    expect(parsed).toEqual({ ...base, reason: 'agent ended the call', summary: 'short', transcript });
  });

  it('cuts long free text with a marker saying how long it was, and cutting again changes nothing', () => {
    const reason = 'r'.repeat(MAX_REASON_CHARS * 3);
    const once = callResultSchema.parse({ ...base, reason });
    expect(once.reason?.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
    expect(once.reason).toMatch(/^r+… \[cut from 3000 chars\]$/);
    expect(callResultSchema.parse(once)).toEqual(once);
    // never half a surrogate pair
    const emoji = '😀'.repeat(MAX_REASON_CHARS);
    const cut = capText(emoji, MAX_REASON_CHARS);
    expect(cut.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
    expect(Buffer.from(cut).toString()).toBe(cut);
    expect(cut).not.toMatch(/\uFFFD/);
  });

  it('cuts a transcript to its line and byte caps with a last system line counting what was dropped', () => {
    const many = Array.from({ length: MAX_TRANSCRIPT_LINES * 2 }, (_, i): TranscriptLine => ({ role: 'callee', text: `line ${i}` }));
    const capped = capTranscript(many);
    expect(capped).toHaveLength(MAX_TRANSCRIPT_LINES);
    expect(capped.slice(0, -1)).toEqual(many.slice(0, MAX_TRANSCRIPT_LINES - 1));
    const droppedBytes = bytesOf(many.slice(MAX_TRANSCRIPT_LINES - 1));
    expect(capped.at(-1)).toEqual({ role: 'system', text: `[transcript truncated: ${MAX_TRANSCRIPT_LINES + 1} lines / ${droppedBytes} bytes dropped]` });
    expect(capTranscript(capped)).toEqual(capped);

    const long: TranscriptLine[] = [
      { role: 'agent', text: 'a'.repeat(MAX_TRANSCRIPT_LINE_CHARS + 100) },
      { role: 'callee', text: 'ok' },
    ];
    const cut = capTranscript(long);
    expect(cut[0]?.text.length).toBe(MAX_TRANSCRIPT_LINE_CHARS);
    expect(cut[0]?.text.endsWith('…')).toBe(true);
    expect(cut[1]).toEqual({ role: 'callee', text: 'ok' });
    expect(cut[2]).toEqual({ role: 'system', text: '[transcript truncated: 0 lines / 101 bytes dropped]' });
    expect(capTranscript(cut)).toEqual(cut);

    const heavy = Array.from({ length: 400 }, (): TranscriptLine => ({ role: 'agent', text: 'é'.repeat(2000) })); // 4,000 bytes each
    const light = capTranscript(heavy);
    expect(bytesOf(light)).toBeLessThanOrEqual(MAX_TRANSCRIPT_BYTES);
    expect(light.at(-1)?.text).toMatch(/^\[transcript truncated: \d+ lines/);
    expect(capTranscript(light)).toEqual(light);
  });

  it('refuses more survey answers than a survey has, and ids that are not ids', () => {
    const answers = Array.from({ length: MAX_SURVEY_ANSWERS + 1 }, (_, i) => ({ question: `q${i}`, answer: 'yes' }));
    expect(callResultSchema.safeParse({ ...base, surveyAnswers: answers }).success).toBe(false);
    expect(callResultSchema.safeParse({ ...base, callId: 'a:b' }).success).toBe(false);
    expect(callResultSchema.safeParse({ ...base, campaignId: 'x y' }).success).toBe(false);
    expect(callResultSchema.safeParse({ ...base, phoneNumber: '+1'.padEnd(100, '5') }).success).toBe(false);
  });
});
