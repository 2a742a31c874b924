import { llm, voice } from '@livekit/agents';
import type { Logger } from '../core/logger.js';
import type { CallResult } from '../core/outcomes.js';
import { SECOND, sleep } from '../core/time.js';
import type { CallServerApi } from './callServerApi.js';
import type { OutcomeDecision, CallOutcomeTracker } from './outcomeTracker.js';
import type { CallProfile } from './profiles.js';
import { playOut, speak } from './speech.js';
import type { WarmTransferPort } from './warmTransfer.js';

/** Longest wait for a fixed message (voicemail, goodbye, transfer announcement) to play out. */
const MESSAGE_PLAYOUT_TIMEOUT_MS = 30 * SECOND;
/** Longest wait for the session to close after it was told to shut down. */
const SESSION_CLOSE_TIMEOUT_MS = 5 * SECOND;
const TRANSCRIPT_TOOL_LINE_CHARS = 300;

/** Sends DTMF digits to the callee (an IVR asking for digits). Returns a line for the model. */
export type DtmfSender = (digits: string[]) => Promise<string>;

export interface CallBehaviour {
  transferConfirmTimeoutMs: number;
  transferRingingTimeoutS: number;
  voicemailPauseMs: number;
}

export interface CallControllerOptions {
  profile: CallProfile;
  tracker: CallOutcomeTracker;
  serverApi: CallServerApi;
  behaviour: CallBehaviour;
  /** Outbound calls get the voicemail and IVR tools; inbound calls are greeted. */
  outbound: boolean;
  /** The callee's SIP participant identity (on an inbound call, the caller's; `setCallee` can set it later). */
  calleeIdentity?: string;
  warmTransfer?: WarmTransferPort;
  /** Without one, the agent uses agents-js' beta.sendDtmfEvents, which publishes DTMF in the job's room. */
  sendDtmf?: DtmfSender;
  logger: Logger;
}

/**
 * One call's conversation-side logic, independent of how audio reaches the model: what each tool does, the
 * call's timers (maximum duration, silence), and how every way a call can end leads to one hang-up and one
 * reported outcome. The real worker and the simulated agent both drive calls through this.
 */
export class CallController {
  readonly profile: CallProfile;
  readonly tracker: CallOutcomeTracker;
  readonly serverApi: CallServerApi;
  readonly outbound: boolean;
  private readonly behaviour: CallBehaviour;
  private readonly warm: WarmTransferPort | undefined;
  private readonly dtmf: DtmfSender | undefined;
  private readonly log: Logger;
  private calleeIdentity: string | undefined;
  private session: voice.AgentSession | undefined;
  private ending: Promise<CallResult> | undefined;
  private closed = false;
  private readonly closedWaiters = new Set<() => void>();
  private busy = 0;
  private heardCallee = false;
  private leavingVoicemail = false;
  /** A transfer being carried out: the callee leaving meanwhile is the transfer working, not a hang-up. */
  private transferInFlight: Promise<unknown> | undefined;
  /** After a warm transfer the caller and the operator talk in this room: leaving must not delete it. */
  private keepRoom = false;
  private maxDurationTimer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private readonly doneWaiters = new Set<(result: CallResult) => void>();

  constructor(options: CallControllerOptions) {
    this.profile = options.profile;
    this.tracker = options.tracker;
    this.serverApi = options.serverApi;
    this.outbound = options.outbound;
    this.behaviour = options.behaviour;
    this.warm = options.warmTransfer;
    this.dtmf = options.sendDtmf;
    this.log = options.logger;
    this.calleeIdentity = options.calleeIdentity;
  }

  /** True once the call started ending (a tool, a timeout, the callee, or a shutdown). */
  get isEnding(): boolean {
    return this.ending !== undefined;
  }

  /** True when the agent left a warm-transferred call without deleting its room. */
  get roomKept(): boolean {
    return this.keepRoom;
  }

  setCallee(identity: string): void {
    this.calleeIdentity = identity;
  }

  get callee(): string | undefined {
    return this.calleeIdentity;
  }

  /** Resolves with the reported result once the call has ended. */
  done(): Promise<CallResult> {
    if (this.ending) return this.ending;
    return new Promise((resolve) => this.doneWaiters.add(resolve));
  }

  /**
   * Follows a started session: transcript, callee speech, the timers, and its close (whatever closed it).
   * Call once the callee is connected.
   */
  attach(session: voice.AgentSession): void {
    this.session = session;
    this.tracker.markConnected();
    const E = voice.AgentSessionEventTypes;
    session.on(E.ConversationItemAdded, (ev) => {
      const item = ev.item;
      if (item.type !== 'message') return;
      const text = item.textContent ?? '';
      if (item.role === 'user') {
        this.heardCallee = true;
        this.tracker.addTranscript('callee', text);
      } else if (item.role === 'assistant') {
        this.tracker.addTranscript('agent', text);
      }
      this.touch();
    });
    session.on(E.FunctionToolsExecuted, (ev) => {
      ev.functionCalls.forEach((call, index) => {
        const output = ev.functionCallOutputs[index]?.output ?? '';
        this.tracker.addTranscript('system', `${call.name}(${call.args}) → ${output}`.slice(0, TRANSCRIPT_TOOL_LINE_CHARS));
      });
      this.touch();
    });
    session.on(E.UserInputTranscribed, () => {
      this.heardCallee = true;
      this.touch();
    });
    session.on(E.UserStateChanged, (ev) => {
      if (ev.newState === 'speaking') this.heardCallee = true;
      this.touch();
    });
    session.on(E.AgentStateChanged, () => this.touch());
    session.on(E.Close, (ev) => {
      this.closed = true;
      this.closedWaiters.forEach((wake) => wake());
      this.closedWaiters.clear();
      void this.afterTransfer().then(() => this.end(closeFallback(ev), { hangup: true }));
    });

    this.maxDurationTimer = setTimeout(() => {
      void this.politeHangup('max_duration');
    }, this.profile.limits.maxCallDurationMs);
    this.maxDurationTimer.unref?.();
    this.touch();
  }

  /** Restarts the silence timer: something was said or done. */
  private touch(): void {
    if (this.ending || !this.session) return;
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => this.onSilence(), this.profile.limits.silenceTimeoutMs);
    this.silenceTimer.unref?.();
  }

  private onSilence(): void {
    const state = this.session?.agentState;
    if (this.busy > 0 || (state !== 'listening' && state !== 'idle') || this.session?.userState === 'speaking') {
      this.touch(); // someone is talking or a tool is running: that is not silence
      return;
    }
    void this.politeHangup('silence');
  }

  private clearTimers(): void {
    if (this.maxDurationTimer) clearTimeout(this.maxDurationTimer);
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.maxDurationTimer = undefined;
    this.silenceTimer = undefined;
  }

  /** Says the profile's goodbye for the limit that was reached, then hangs up. Outcome `answered`. */
  async politeHangup(kind: 'max_duration' | 'silence'): Promise<void> {
    await this.afterTransfer(); // a transfer under way decides first (it may hand the call over)
    if (this.ending || !this.session) return;
    const reason = kind === 'max_duration' ? 'max call duration reached' : 'silence timeout';
    this.log.info({ reason }, 'ending the call politely');
    this.tracker.decide({ outcome: 'answered', reason });
    this.busy += 1;
    try {
      const message = kind === 'max_duration' ? this.profile.maxDurationMessage : this.profile.silenceMessage;
      await playOut(speak(this.session, message), MESSAGE_PLAYOUT_TIMEOUT_MS);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not say goodbye');
    } finally {
      this.busy -= 1;
    }
    await this.end({ outcome: 'answered', reason }, { hangup: true });
  }

  /**
   * Ends the call once: stops the timers, hangs up (deletes the room) unless a warm transfer handed it to an
   * operator, shuts the session down, and reports the decision (or `fallback`). Every path ends here.
   */
  end(fallback: OutcomeDecision, options: { hangup: boolean }): Promise<CallResult> {
    if (!this.ending) {
      this.ending = this.runEnd(fallback, options.hangup);
      void this.ending.then((result) => {
        this.doneWaiters.forEach((wake) => wake(result));
        this.doneWaiters.clear();
      });
    }
    return this.ending;
  }

  private async runEnd(fallback: OutcomeDecision, hangup: boolean): Promise<CallResult> {
    this.clearTimers();
    // Decide before anything slow happens, so a callee hang-up racing this end cannot change the outcome.
    this.tracker.decide(fallback);
    if (hangup && !this.keepRoom) await this.serverApi.hangup(this.tracker.decision?.reason ?? fallback.reason);
    const session = this.session;
    if (session && !this.closed) {
      try {
        session.shutdown({ drain: false, reason: fallback.reason });
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'session shutdown failed');
      }
    }
    // Report as soon as the call is over; the session's own teardown can take a moment longer.
    const result = await this.tracker.finish(fallback);
    if (session) await this.waitClosed(SESSION_CLOSE_TIMEOUT_MS);
    return result;
  }

  private async waitClosed(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    const timeout = new AbortController();
    await Promise.race([
      new Promise<void>((resolve) => this.closedWaiters.add(resolve)),
      sleep(timeoutMs, timeout.signal).catch(() => undefined),
    ]);
    timeout.abort();
  }

  /** The callee left (hung up, or `sip.callStatus` went to `hangup`); during a transfer, the transfer decides. */
  async calleeLeft(detail = 'callee hung up'): Promise<CallResult> {
    await this.afterTransfer();
    return this.end({ outcome: 'answered', reason: detail }, { hangup: true });
  }

  /** Resolves once no transfer is being carried out (its own outcome, if any, is decided by then). */
  private async afterTransfer(): Promise<void> {
    while (this.transferInFlight) await this.transferInFlight.catch(() => undefined);
  }

  /** A crash or shutdown path: report `failed` with the reason unless an outcome was decided already. */
  abort(reason: string): Promise<CallResult> {
    return this.end({ outcome: 'failed', reason }, { hangup: true });
  }

  // ---- what the tools do ------------------------------------------------------------------------------

  /** `detected_answering_machine` and voice.AMD: leave the campaign's message, pause, hang up. Outcome `voicemail`. */
  async leaveVoicemail(source: 'tool' | 'amd'): Promise<string> {
    const session = this.requireSession();
    if (this.ending || this.leavingVoicemail) return 'the call is already ending';
    if (source === 'tool' && !this.heardCallee) {
      throw new llm.ToolError('wait until the greeting has been heard before deciding it is an answering machine');
    }
    this.leavingVoicemail = true;
    const message = this.profile.voicemailMessage;
    const reason = `answering machine (${source === 'amd' ? 'detected by AMD' : 'greeting heard'}); ${message ? 'message left' : 'no message configured'}`;
    this.tracker.decide({ outcome: 'voicemail', reason });
    this.busy += 1;
    try {
      if (message) await playOut(speak(session, message), MESSAGE_PLAYOUT_TIMEOUT_MS);
      await sleep(this.behaviour.voicemailPauseMs);
    } finally {
      this.busy -= 1;
    }
    void this.end({ outcome: 'voicemail', reason }, { hangup: true });
    return message ? 'voicemail message left; hanging up' : 'hanging up';
  }

  /** `end_call` (agents-js createEndCallTool) was called: the outcome is `answered`; the tool shuts the session down. */
  onEndCallTool(): void {
    this.tracker.decide({ outcome: 'answered', reason: 'agent ended the call' });
  }

  /**
   * `transfer_call`: announce, then a cold transfer (SIP REFER, confirmed) or a warm hand-off, by the destination's
   * mode. Failure throws a ToolError starting "could not transfer call" so the model can recover; the outcome
   * stays open and the failure goes into the summary.
   */
  async transfer(destinationName: string | undefined): Promise<string> {
    const flow = this.runTransfer(destinationName);
    this.transferInFlight = flow;
    try {
      return await flow;
    } finally {
      if (this.transferInFlight === flow) this.transferInFlight = undefined;
    }
  }

  private async runTransfer(destinationName: string | undefined): Promise<string> {
    const session = this.requireSession();
    if (this.ending) throw new llm.ToolError('could not transfer call: the call is already ending');
    const name = destinationName ?? this.profile.transfer.defaultDestination;
    // Own keys only: a name the model makes up (`constructor`) is not a destination.
    const destinations = this.profile.transfer.destinations;
    const destination = name && Object.hasOwn(destinations, name) ? destinations[name] : undefined;
    if (!name || !destination) {
      const known = Object.keys(this.profile.transfer.destinations);
      throw new llm.ToolError(`could not transfer call: unknown destination "${name ?? ''}" (known: ${known.join(', ') || 'none'})`);
    }
    const identity = this.calleeIdentity;
    if (!identity) throw new llm.ToolError('could not transfer call: the caller is not on a phone line');
    const mode = destination.mode ?? this.profile.transfer.mode;
    const log = this.log.child({ destination: name, mode });
    this.busy += 1;
    try {
      await playOut(speak(session, this.profile.transfer.announcement), MESSAGE_PLAYOUT_TIMEOUT_MS);
      if (mode === 'warm') return await this.warmTransfer(session, name, destination.target);

      const result = await this.serverApi.transferCold(identity, destination.target, {
        confirmTimeoutMs: this.behaviour.transferConfirmTimeoutMs,
        ringingTimeoutS: this.behaviour.transferRingingTimeoutS,
      });
      if (result.ok) {
        log.info('cold transfer confirmed');
        this.tracker.decide({
          outcome: 'transferred',
          reason: `cold transfer to ${name}`,
          transfer: { mode: 'cold', target: destination.target },
        });
        void this.end({ outcome: 'transferred', reason: `cold transfer to ${name}` }, { hangup: true });
        return `the call was transferred to ${name}`;
      }
      log.warn({ reason: result.reason }, 'cold transfer failed');
      this.tracker.note(`cold transfer to ${name} failed: ${result.reason}`);
      throw new llm.ToolError(`could not transfer call (${result.reason})`);
    } finally {
      this.busy -= 1;
    }
  }

  private async warmTransfer(session: voice.AgentSession, name: string, target: string): Promise<string> {
    if (!this.warm) throw new llm.ToolError('could not transfer call: warm transfer is not available here');
    const outcome = await this.warm.transfer({ target, destinationName: name, session, briefing: this.briefing() });
    if (!outcome.ok) {
      this.tracker.note(`warm transfer to ${name} failed: ${outcome.reason}`);
      throw new llm.ToolError(`could not transfer call: ${outcome.reason}. Tell the caller and offer other help.`);
    }
    this.tracker.decide({ outcome: 'transferred', reason: `warm transfer to ${name}`, transfer: { mode: 'warm', target } });
    this.keepRoom = true;
    void this.end({ outcome: 'transferred', reason: `warm transfer to ${name}` }, { hangup: false });
    return `the caller is now talking with ${name}; the assistant has left the call`;
  }

  /** A short account of the call for an operator. */
  briefing(): string {
    const lastCallee = this.tracker.transcript.filter((line) => line.role === 'callee').slice(-3).map((line) => line.text);
    const answers = this.tracker.surveyAnswers.map((a) => `${a.question}: ${a.answer}`);
    return [
      `Call from the "${this.profile.name}" campaign.`,
      lastCallee.length > 0 ? `The caller said: ${lastCallee.join(' / ')}` : 'The caller has not said much yet.',
      answers.length > 0 ? `Answers so far: ${answers.join('; ')}` : '',
    ]
      .filter(Boolean)
      .join(' ');
  }

  /** `record_answer`: stores one survey answer and tells the model what to ask next. */
  recordAnswer(question: string, answer: string): string {
    const questions = this.profile.surveyQuestions;
    const matched = matchQuestion(questions, question);
    if (!matched) {
      throw new llm.ToolError(`unknown question "${question}"; the questions are: ${questions.map((q, i) => `${i + 1}. ${q}`).join(' ')}`);
    }
    this.tracker.recordAnswer(matched, answer);
    const next = questions.find((q) => !this.tracker.hasAnswer(q));
    return next ? `answer recorded; next question: ${next}` : 'answer recorded; all questions are answered: thank the callee and end the call';
  }

  /** Whether DTMF goes through this controller's sender (the simulated agent) rather than agents-js' own tool (a room). */
  get hasDtmfSender(): boolean {
    return this.dtmf !== undefined;
  }

  /** `send_dtmf_events` on a call without a room: keypad tones to an IVR through the injected sender. */
  async sendDtmf(digits: string[]): Promise<string> {
    if (!this.dtmf) throw new llm.ToolError('sending DTMF is not available on this call');
    this.tracker.addTranscript('system', `DTMF sent: ${digits.join('')}`);
    this.busy += 1;
    try {
      return await this.dtmf(digits);
    } finally {
      this.busy -= 1;
    }
  }

  /**
   * A keypad press from the caller, as the user turn the model answers (a menu press leads to transfer_call
   * with that entry's destination; a voice request for the same department works the same way).
   */
  dtmfInput(digit: string): string {
    const entry = this.profile.dtmfMenu.find((e) => e.digit === digit);
    this.heardCallee = true;
    return entry
      ? `[keypad] The caller pressed ${digit}: ${entry.label} (destination "${entry.destination}").`
      : `[keypad] The caller pressed ${digit}, which is not a menu option.`;
  }

  private requireSession(): voice.AgentSession {
    if (!this.session) throw new llm.ToolError('the call is not connected');
    return this.session;
  }
}

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

/** The outcome a session close leads to when nothing was decided before it. */
function closeFallback(ev: voice.CloseEvent): OutcomeDecision {
  switch (ev.reason) {
    case voice.CloseReason.PARTICIPANT_DISCONNECTED:
      return { outcome: 'answered', reason: 'callee hung up' };
    case voice.CloseReason.ERROR:
      return { outcome: 'failed', reason: `agent error: ${ev.error?.type ?? 'unknown'}` };
    case voice.CloseReason.JOB_SHUTDOWN:
      return { outcome: 'failed', reason: 'the agent shut down during the call' };
    default:
      return { outcome: 'failed', reason: `the agent session closed (${String(ev.reason)}) without an outcome` };
  }
}
