import { llm, voice } from '@livekit/agents';
import type { Logger } from '../core/logger.js';
import type { CallResult } from '../core/outcomes.js';
import { SECOND, sleep, systemClock, type Clock } from '../core/time.js';
import type { CallServerApi } from './callServerApi.js';
import { keypadInput, recordSurveyAnswer } from './callSurvey.js';
import { CallTimers } from './callTimers.js';
import { CallTransfers } from './callTransfers.js';
import type { OutcomeDecision, CallOutcomeTracker } from './outcomeTracker.js';
import type { CallProfile } from './profiles.js';
import { DEFAULT_WARM_TRANSFER_TIMEOUT_S } from './agentConfig.js';
import { followSession } from './sessionTranscript.js';
import { playOut, speak } from './speech.js';
import type { WarmTransferPort } from './warmTransfer.js';
import { errorMessage } from '../core/errors.js';

export { matchQuestion } from './callSurvey.js';

/** Longest wait for a fixed message (voicemail, goodbye) to play out. */
const MESSAGE_PLAYOUT_TIMEOUT_MS = 30 * SECOND;
/** Longest wait for the session to close after it was told to shut down. */
const SESSION_CLOSE_TIMEOUT_MS = 5 * SECOND;

/** Sends DTMF digits to the callee (an IVR asking for digits). Returns a line for the model. */
export type DtmfSender = (digits: string[]) => Promise<string>;

export interface CallBehaviour {
  transferConfirmTimeoutMs: number;
  transferRingingTimeoutS: number;
  /** Longest a warm transfer keeps the caller on hold (AGENT_WARM_TRANSFER_TIMEOUT_S), on the call's clock; default 90 s. */
  warmTransferTimeoutMs?: number;
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
  /**
   * The call's time: its maximum duration, silence timeout and voicemail pause run on it (systemClock unless a test
   * moves one itself). Bounds on waits for the session or speech stay on real time: they guard real I/O.
   */
  clock?: Clock;
}

/**
 * One call's conversation-side logic, independent of how audio reaches the model: how every way a call can end leads
 * to one hang-up and one reported outcome, and what each tool does. Its parts live beside it: the transcript
 * (sessionTranscript.ts), the timers (callTimers.ts), transfers (callTransfers.ts), survey answers and keypad
 * presses (callSurvey.ts). runCall drives every call through this, in a LiveKit room or in the simulated agent.
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
  private readonly clock: Clock;
  private calleeIdentity: string | undefined;
  private session: voice.AgentSession | undefined;
  private ending: Promise<CallResult> | undefined;
  private closed = false;
  private readonly closedWaiters = new Set<() => void>();
  private busyCount = 0;
  private heardCallee = false;
  private leavingVoicemail = false;
  /** After a warm transfer the caller and the operator talk in this room: leaving must not delete it. */
  private keepRoom = false;
  private readonly timers: CallTimers;
  private readonly transfers: CallTransfers;
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
    this.clock = options.clock ?? systemClock;
    this.calleeIdentity = options.calleeIdentity;
    this.timers = new CallTimers({
      maxDurationMs: this.profile.limits.maxCallDurationMs,
      silenceTimeoutMs: this.profile.limits.silenceTimeoutMs,
      onMaxDuration: () => void this.politeHangup('max_duration'),
      onSilence: () => void this.politeHangup('silence'),
      isQuiet: () => {
        const state = this.session?.agentState;
        return this.busyCount === 0 && (state === 'listening' || state === 'idle') && this.session?.userState !== 'speaking';
      },
      clock: this.clock,
    });
    this.transfers = new CallTransfers(
      {
        profile: this.profile,
        tracker: this.tracker,
        serverApi: this.serverApi,
        log: this.log,
        confirmTimeoutMs: this.behaviour.transferConfirmTimeoutMs,
        ringingTimeoutS: this.behaviour.transferRingingTimeoutS,
        warmTimeoutMs: this.behaviour.warmTransferTimeoutMs ?? DEFAULT_WARM_TRANSFER_TIMEOUT_S * SECOND,
        clock: this.clock,
        isEnding: () => this.isEnding,
        callee: () => this.callee,
        requireSession: () => this.requireSession(),
        busy: (work) => this.busy(work),
        end: (decision, options) => this.end(decision, options),
        keepRoom: () => {
          this.keepRoom = true;
        },
      },
      options.warmTransfer,
    );
  }

  /** Runs `work` as something going on: the silence timer does not end the call meanwhile. */
  private async busy<T>(work: () => Promise<T>): Promise<T> {
    this.busyCount += 1;
    try {
      return await work();
    } finally {
      this.busyCount -= 1;
    }
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
    followSession(session, this.tracker, {
      onActivity: () => {
        if (!this.ending) this.timers.touch();
      },
      onCalleeHeard: () => {
        this.heardCallee = true;
      },
      onClose: (ev) => {
        this.closed = true;
        this.closedWaiters.forEach((wake) => wake());
        this.closedWaiters.clear();
        void this.transfers.settled().then(() => this.end(closeFallback(ev), { hangup: true }));
      },
    });
    this.timers.start();
  }

  /** Says the profile's goodbye for the limit that was reached, then hangs up. Outcome `answered`. */
  async politeHangup(kind: 'max_duration' | 'silence'): Promise<void> {
    await this.transfers.settled(); // a transfer under way decides first (it may hand the call over)
    if (this.ending || !this.session) return;
    const reason = kind === 'max_duration' ? 'max call duration reached' : 'silence timeout';
    this.log.info({ reason }, 'ending the call politely');
    this.tracker.decide({ outcome: 'answered', reason });
    const session = this.session;
    const message = kind === 'max_duration' ? this.profile.maxDurationMessage : this.profile.silenceMessage;
    await this.busy(() => playOut(speak(session, message), MESSAGE_PLAYOUT_TIMEOUT_MS)).catch((err: unknown) =>
      this.log.warn({ err: errorMessage(err) }, 'could not say goodbye'),
    );
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
    this.timers.stop();
    // Decide before anything slow happens, so a callee hang-up racing this end cannot change the outcome.
    this.tracker.decide(fallback);
    if (hangup && !this.keepRoom) await this.serverApi.hangup(this.tracker.decision?.reason ?? fallback.reason);
    const session = this.session;
    if (session && !this.closed) {
      try {
        session.shutdown({ drain: false, reason: fallback.reason });
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'session shutdown failed');
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
    await this.transfers.settled();
    return this.end({ outcome: 'answered', reason: detail }, { hangup: true });
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
    await this.busy(async () => {
      if (message) await playOut(speak(session, message), MESSAGE_PLAYOUT_TIMEOUT_MS);
      await this.clock.sleep(this.behaviour.voicemailPauseMs);
    });
    void this.end({ outcome: 'voicemail', reason }, { hangup: true });
    return message ? 'voicemail message left; hanging up' : 'hanging up';
  }

  /** `end_call` (agents-js createEndCallTool) was called: the outcome is `answered`; the tool shuts the session down. */
  onEndCallTool(): void {
    this.tracker.decide({ outcome: 'answered', reason: 'agent ended the call' });
  }

  /** `transfer_call` (CallTransfers): a cold transfer or a warm hand-off, by the destination's mode. */
  transfer(destinationName: string | undefined): Promise<string> {
    return this.transfers.transfer(destinationName);
  }

  /** `record_answer`: stores one survey answer and tells the model what to ask next. */
  recordAnswer(question: string, answer: string): string {
    return recordSurveyAnswer(this.profile, this.tracker, question, answer);
  }

  /** Whether DTMF goes through this controller's sender (the simulated agent) rather than agents-js' own tool (a room). */
  get hasDtmfSender(): boolean {
    return this.dtmf !== undefined;
  }

  /** `send_dtmf_events` on a call without a room: keypad tones to an IVR through the injected sender. */
  async sendDtmf(digits: string[]): Promise<string> {
    if (!this.dtmf) throw new llm.ToolError('sending DTMF is not available on this call');
    const send = this.dtmf;
    this.tracker.addTranscript('system', `DTMF sent: ${digits.join('')}`);
    return this.busy(() => send(digits));
  }

  /**
   * A keypad press from the caller, as the user turn the model answers (a menu press leads to transfer_call
   * with that entry's destination; a voice request for the same department works the same way).
   */
  dtmfInput(digit: string): string {
    this.heardCallee = true;
    return keypadInput(this.profile, digit);
  }

  private requireSession(): voice.AgentSession {
    if (!this.session) throw new llm.ToolError('the call is not connected');
    return this.session;
  }
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
