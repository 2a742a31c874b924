import { llm } from '@livekit/agents';
import type { CallOutcomeTracker } from './outcomeTracker.js';
import type { CallProfile } from './profiles.js';

/** Finds the profile question a model's `question` argument means: exact, 1-based number, or containment. */
export function matchQuestion(questions: readonly string[], asked: string): string | undefined {
  const wanted = asked.trim().toLowerCase();
  const byNumber = /^\d+$/.test(wanted) ? questions[Number(wanted) - 1] : undefined;
  if (byNumber) return byNumber;
  return (
    questions.find((q) => q.toLowerCase() === wanted) ??
    questions.find((q) => wanted.length >= 3 && (q.toLowerCase().includes(wanted) || wanted.includes(q.toLowerCase())))
  );
}

/**
 * `record_answer`: stores one survey answer and tells the model what to ask next. An unknown question is a ToolError
 * listing the profile's questions, so the model can correct itself.
 */
export function recordSurveyAnswer(profile: CallProfile, tracker: CallOutcomeTracker, question: string, answer: string): string {
  const questions = profile.surveyQuestions;
  const matched = matchQuestion(questions, question);
  if (!matched) {
    throw new llm.ToolError(`unknown question "${question}"; the questions are: ${questions.map((q, i) => `${i + 1}. ${q}`).join(' ')}`);
  }
  tracker.recordAnswer(matched, answer);
  const next = questions.find((q) => !tracker.hasAnswer(q));
  return next ? `answer recorded; next question: ${next}` : 'answer recorded; all questions are answered: thank the callee and end the call';
}

/**
 * A keypad press from the caller, as the user turn the model answers (a menu press leads to transfer_call with that
 * entry's destination; a voice request for the same department works the same way).
 */
export function keypadInput(profile: CallProfile, digit: string): string {
  const entry = profile.dtmfMenu.find((e) => e.digit === digit);
  return entry
    ? `[keypad] The caller pressed ${digit}: ${entry.label} (destination "${entry.destination}").`
    : `[keypad] The caller pressed ${digit}, which is not a menu option.`;
}

/** A short account of the call for an operator (a warm transfer's briefing). */
export function callBriefing(profile: CallProfile, tracker: CallOutcomeTracker): string {
  const lastCallee = tracker.transcript.filter((line) => line.role === 'callee').slice(-3).map((line) => line.text);
  const answers = tracker.surveyAnswers.map((a) => `${a.question}: ${a.answer}`);
  return [
    `Call from the "${profile.name}" campaign.`,
    lastCallee.length > 0 ? `The caller said: ${lastCallee.join(' / ')}` : 'The caller has not said much yet.',
    answers.length > 0 ? `Answers so far: ${answers.join('; ')}` : '',
  ]
    .filter(Boolean)
    .join(' ');
}
