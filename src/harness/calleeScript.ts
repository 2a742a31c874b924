import { voice } from '@livekit/agents';
import type { Callee } from '../sim/index.js';
import { TOOL_NAMES } from '../agent/callAgent.js';
import type { CallProfile } from '../agent/profiles.js';

type FakeLLMResponse = voice.testing.FakeLLMResponse;

/** One scripted model turn: answers the first input it matches, once. */
export interface ScriptRule {
  match: (input: string) => boolean;
  response: Omit<FakeLLMResponse, 'input'>;
}

/**
 * agents-js' FakeLLM answers by exact input text, one answer per text. A phone script needs more: the same words
 * twice ("Yes" to two survey questions) and answers to tool results whose wording varies (a transfer's SIP status),
 * so this one takes rules in order, each used once.
 */
export class ScriptedLLM extends voice.testing.FakeLLM {
  private readonly rules: { rule: ScriptRule; used: boolean }[];

  constructor(rules: ScriptRule[]) {
    super([]);
    this.rules = rules.map((rule) => ({ rule, used: false }));
  }

  override label(): string {
    return 'scripted-llm';
  }

  override lookup(input: string): FakeLLMResponse | undefined {
    const entry = this.rules.find((e) => !e.used && e.rule.match(input));
    if (!entry) return undefined;
    entry.used = true;
    return { input, ...entry.rule.response };
  }

  /** Adds a rule at the end (for inputs only known while the call runs). */
  add(rule: ScriptRule): void {
    this.rules.push({ rule, used: false });
  }

  /**
   * A reply asked for with instructions only (`generateReply({instructions})`, the agent's greeting): FakeLLM finds no
   * input to answer then. It is looked up as `instructions:` + the instructions' last line, FakeLLM's own convention.
   */
  override chat(params: Parameters<voice.testing.FakeLLM['chat']>[0]): ReturnType<voice.testing.FakeLLM['chat']> {
    const items = params.chatCtx.items;
    const last = items[items.length - 1];
    const answers = last?.type === 'function_call_output' || (last?.type === 'message' && last.role === 'user');
    const system = items.find((item) => item.type === 'message' && (item.role === 'system' || item.role === 'developer'));
    if (answers || system?.type !== 'message') return super.chat(params);
    const lines = (system.textContent ?? '').split('\n');
    const chatCtx = params.chatCtx.copy();
    chatCtx.addMessage({ role: 'user', content: `${INSTRUCTIONS_INPUT_PREFIX}${lines[lines.length - 1] ?? ''}` });
    return super.chat({ ...params, chatCtx });
  }
}

/** How ScriptedLLM shows a reply asked for with instructions only. */
export const INSTRUCTIONS_INPUT_PREFIX = 'instructions:';

/** What the simulated callee says, and the scripted model that plays the agent's side. */
export interface CallScript {
  llm: ScriptedLLM;
  /** What the agent says first on an inbound call (it greets the caller); undefined on outbound calls. */
  greeting: string | undefined;
  /** The callee's turns, in order (the harness feeds them with session.run). */
  turns: string[];
  /** An IVR callee's answer to keys the agent pressed (undefined: nothing more is said). */
  ivrReply(digits: string): string | undefined;
}

const VOICEMAIL_PATTERN = /leave (a|your) message|after the (beep|tone)|voicemail|not available to take your call|mailbox/i;
const WANTS_HUMAN_PATTERN = /\b(real|a|an) (person|human)\b|talk to (someone|somebody|a person|a human|an agent|an operator)|representative|operator/i;
const IVR_PATTERN = /\bpress\s+([0-9*#])/i;
const GOODBYE_PATTERN = /\b(good ?bye|bye)\b/i;
const MAX_DTMF_SENDS = 3;
/** Said by a survey callee who has no scripted answer to a question. */
export const NO_ANSWER_TEXT = "I'd rather not answer that.";

const exact = (text: string) => (input: string) => input === text;

/** A survey callee's scripted answer: keyed by the question text, its number ("1", "q1") or a word of it. */
function surveyAnswer(callee: Callee, question: string, index: number): string {
  const answers = callee.surveyAnswers ?? {};
  const keys = Object.keys(answers);
  const key =
    keys.find((k) => k.trim().toLowerCase() === question.toLowerCase()) ??
    keys.find((k) => k.trim().toLowerCase() === String(index + 1) || k.trim().toLowerCase() === `q${index + 1}`) ??
    keys.find((k) => k.trim().length >= 3 && question.toLowerCase().includes(k.trim().toLowerCase()));
  return (key !== undefined ? answers[key] : undefined) ?? NO_ANSWER_TEXT;
}

/** The first digit(s) an IVR asks for: the callee's own DTMF map first, else the first "press N" in its prompt. */
function ivrChoice(callee: Callee, line: string): string | undefined {
  const scripted = Object.keys(callee.dtmf ?? {})[0];
  return scripted ?? IVR_PATTERN.exec(line)?.[1];
}

export interface CallScriptOptions {
  /** The callee called in: the agent greets first and answers as a support line. */
  inbound?: boolean;
  /** The model to add the script's rules to (one made before the callee was known); default a new one. */
  llm?: ScriptedLLM;
}

/** The scripted greeting of an inbound call: the model's answer to the agent's greeting instructions. */
export const INBOUND_GREETING_TEXT = 'Thank you for calling. How can I help you today?';

/** The rule that answers the agent's greeting (runCall asks for a reply on the profile's greeting instructions). */
export function greetingRule(): ScriptRule {
  return { match: (input) => input.startsWith(INSTRUCTIONS_INPUT_PREFIX), response: { content: INBOUND_GREETING_TEXT } };
}

function opener(profile: CallProfile, inbound: boolean): string {
  const first = profile.surveyQuestions[0];
  if (first) return inbound ? `Happy to help. First, a few quick questions. ${first}` : `Hi, thanks for picking up! I have a few quick questions. ${first}`;
  return inbound ? 'Of course, I can help you with that.' : 'Hi, this is the automated assistant calling for you. Do you have a moment?';
}

/**
 * Builds the simulated call from the callee's script and the call's profile: a voicemail greeting gets
 * detected_answering_machine, "can I talk to a person" gets transfer_call, survey answers get record_answer,
 * an IVR prompt gets send_dtmf_events, goodbye (or a callee with nothing more to say) gets end_call.
 */
export function buildCallScript(callee: Callee, profile: CallProfile, options: CallScriptOptions = {}): CallScript {
  const inbound = options.inbound ?? false;
  const rules: ScriptRule[] = [];
  const lines = (callee.lines ?? []).filter((line) => line.trim() !== '');
  const turns: string[] = [];
  const canTransfer = Object.keys(profile.transfer.destinations).length > 0;
  const questions = profile.surveyQuestions;
  let dtmfSends = 0;
  let machine = callee.kind === 'voicemail';

  lines.forEach((line, index) => {
    turns.push(line);
    const isLast = index === lines.length - 1 && questions.length === 0;
    if (machine || VOICEMAIL_PATTERN.test(line)) {
      machine = true;
      rules.push({ match: exact(line), response: { toolCalls: [{ name: TOOL_NAMES.voicemail, args: {} }] } });
      return;
    }
    if (WANTS_HUMAN_PATTERN.test(line)) {
      rules.push({
        match: exact(line),
        response: canTransfer
          ? { toolCalls: [{ name: TOOL_NAMES.transfer, args: {} }] }
          : { content: "I'm sorry, I can't connect you with a person on this call. Goodbye!", toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }] },
      });
      return;
    }
    const digits = callee.kind === 'ivr' || IVR_PATTERN.test(line) ? ivrChoice(callee, line) : undefined;
    if (digits !== undefined && dtmfSends < MAX_DTMF_SENDS) {
      dtmfSends += 1;
      rules.push({ match: exact(line), response: { toolCalls: [{ name: TOOL_NAMES.sendDtmf, args: { events: digits.split('') } }] } });
      return;
    }
    if (GOODBYE_PATTERN.test(line) || (isLast && index > 0)) {
      rules.push({ match: exact(line), response: { content: 'Thank you for your time. Goodbye!', toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }] } });
      return;
    }
    if (index === 0) {
      rules.push({
        match: exact(line),
        response: isLast
          ? {
              content: inbound ? 'Thanks for calling. Goodbye!' : `${opener(profile, inbound)} Actually, I'll let you go for now. Goodbye!`,
              toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }],
            }
          : { content: opener(profile, inbound) },
      });
      return;
    }
    rules.push({ match: exact(line), response: { content: 'I see, thank you.' } });
  });

  if (!machine && questions.length > 0) {
    questions.forEach((question, index) => {
      const answer = surveyAnswer(callee, question, index);
      turns.push(answer);
      rules.push({ match: exact(answer), response: { toolCalls: [{ name: TOOL_NAMES.recordAnswer, args: { question, answer } }] } });
      const next = questions[index + 1];
      rules.push({
        match: (input) => input.includes('answer recorded'),
        response: next
          ? { content: `Thank you. ${next}` }
          : { content: 'That was my last question. Thank you so much for your time. Goodbye!', toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }] },
      });
    });
  }

  // A transfer that failed comes back as a tool error: apologise and end politely.
  rules.push({
    match: (input) => input.includes('could not transfer call'),
    response: {
      content: "I'm sorry, I couldn't connect you right now. Someone will call you back. Goodbye!",
      toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }],
    },
  });

  const llm = options.llm ?? new ScriptedLLM([]);
  for (const rule of rules) llm.add(rule);
  let pressed = '';
  return {
    llm,
    greeting: inbound ? INBOUND_GREETING_TEXT : undefined,
    turns,
    ivrReply(digits) {
      pressed += digits;
      const reply = callee.dtmf?.[pressed] ?? callee.dtmf?.[digits];
      if (reply === undefined) return undefined;
      const deeper = Object.keys(callee.dtmf ?? {}).find((k) => k.length > pressed.length && k.startsWith(pressed));
      const nextDigits = deeper ? deeper.slice(pressed.length) : IVR_PATTERN.exec(reply)?.[1];
      if (nextDigits !== undefined && dtmfSends < MAX_DTMF_SENDS) {
        dtmfSends += 1;
        llm.add({ match: exact(reply), response: { toolCalls: [{ name: TOOL_NAMES.sendDtmf, args: { events: nextDigits.split('') } }] } });
      } else {
        llm.add({
          match: exact(reply),
          response: {
            content: 'Hello, I am calling on behalf of a customer. Thank you, goodbye!',
            toolCalls: [{ name: TOOL_NAMES.endCall, args: {} }],
          },
        });
      }
      return reply;
    },
  };
}
