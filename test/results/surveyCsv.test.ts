/** A survey campaign's answers as CSV (src/results/surveyCsv.ts). */
import { describe, expect, it } from 'vitest';
import { csvCell, surveyCsv } from '../../src/results/surveyCsv.js';

describe('surveyCsv', () => {
  const base = { campaignId: 'survey', reportedBy: 'agent' as const, endedAt: 1 };
  it('one column per question, one row per call, unanswered cells empty, CSV-escaped', () => {
    const csv = surveyCsv([
      { ...base, callId: 'a', outcome: 'answered', reason: 'agent ended the call', durationMs: 61_000, surveyAnswers: [{ question: 'Q1, how?', answer: 'fine, "really"' }, { question: 'Q2', answer: '5' }] },
      { ...base, callId: 'b', outcome: 'voicemail', reason: 'greeting heard' },
      { ...base, callId: 'c', outcome: 'answered', surveyAnswers: [{ question: 'Q2', answer: '=HYPERLINK("x")' }] },
    ]);
    expect(csv.split('\r\n')).toEqual([
      'call_id,campaign_id,outcome,reason,duration_s,answered_questions,"Q1, how?",Q2',
      'a,survey,answered,agent ended the call,61.0,2,"fine, ""really""",5',
      'b,survey,voicemail,greeting heard,,0,,',
      `c,survey,answered,,,1,,"'=HYPERLINK(""x"")"`,
      '',
    ]);
  });

  it('takes the question columns it is given, in that order', () => {
    const csv = surveyCsv([{ ...base, callId: 'a', outcome: 'answered', surveyAnswers: [{ question: 'Q1', answer: 'x' }] }], {
      questions: ['Q2', 'Q1'],
      eol: '\n',
    });
    expect(csv).toBe('call_id,campaign_id,outcome,reason,duration_s,answered_questions,Q2,Q1\na,survey,answered,,,1,,x\n');
    expect(csvCell('line\nbreak')).toBe('"line\nbreak"');
  });
});
