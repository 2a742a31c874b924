import type { Logger } from '../core/logger.js';
import type { CallResult, Outcome, SurveyAnswer, TranscriptLine } from '../core/outcomes.js';
import { systemClock, type Clock } from '../core/time.js';

/**
 * What a durable sink says of a report: `delivered` (on `call-results`), or `pending` (Redis did not take it yet; it
 * is still being sent and waits in the outcome spool for replay, see src/agent/outcomeSpool.ts).
 */
export type ReportStatus = 'delivered' | 'pending';

/**
 * Where finished calls go: the agent's DurableResultReporter (spool, then `call-results`), or a plain ResultReporter
 * (resolves once sent). A sink that throws is retried a few times here.
 */
export interface ResultSink {
  report(result: CallResult): Promise<ReportStatus | void>;
}

/** The terminal decision about a call, before it is written. */
export interface OutcomeDecision {
  outcome: Outcome;
  reason: string;
  transfer?: CallResult['transfer'];
  sipStatusCode?: number;
  sipStatus?: string;
}

/** Caps that keep one result job small whatever the conversation was like. */
const MAX_TRANSCRIPT_LINES = 200;
const MAX_TRANSCRIPT_LINE_CHARS = 2000;
const MAX_ANSWER_CHARS = 1000;
const REPORT_ATTEMPTS = 3;
const REPORT_RETRY_MS = 500;

export interface OutcomeTrackerOptions {
  callId: string | undefined;
  campaignId: string;
  attempt?: number;
  /** The call id as logs show it (inbound ids carry the caller's number: pass them redacted). Default: `callId`. */
  logCallId?: string;
  /** Undefined when the call has no record to report to (a bad dispatch without a call id): the outcome is only logged. */
  sink: ResultSink | undefined;
  logger: Logger;
  clock?: Clock;
}

/**
 * Collects what happens on one call and writes its single terminal outcome.
 *
 * The first decision wins (a voicemail hang-up that races a callee hang-up stays voicemail), and `finish`
 * reports exactly once however many paths reach it (tool, callee hang-up, timeout, crash, shutdown). Across
 * processes the queue's jobId = call id makes a second report a no-op.
 */
export class CallOutcomeTracker {
  private readonly clock: Clock;
  private decided: OutcomeDecision | undefined;
  private connectedAt: number | undefined;
  private readonly lines: TranscriptLine[] = [];
  private droppedLines = 0;
  private readonly answers = new Map<string, string>();
  private readonly notes: string[] = [];
  private callerNumber: string | undefined;
  private finishing: Promise<CallResult> | undefined;

  constructor(private readonly options: OutcomeTrackerOptions) {
    this.clock = options.clock ?? systemClock;
  }

  get callId(): string | undefined {
    return this.options.callId;
  }

  /** The callee answered: the agent now owns the outcome, and the call's duration starts. */
  markConnected(): void {
    this.connectedAt ??= this.clock.now();
  }

  get connected(): boolean {
    return this.connectedAt !== undefined;
  }

  get decision(): OutcomeDecision | undefined {
    return this.decided;
  }

  get finished(): boolean {
    return this.finishing !== undefined;
  }

  /** Records the call's outcome unless one was decided already; returns whether this decision stands. */
  decide(decision: OutcomeDecision): boolean {
    if (this.decided || this.finishing) {
      this.options.logger.debug({ kept: this.decided?.outcome, ignored: decision.outcome }, 'outcome already decided');
      return false;
    }
    this.decided = decision;
    return true;
  }

  addTranscript(role: TranscriptLine['role'], text: string): void {
    const trimmed = text.trim();
    if (trimmed === '') return;
    if (this.lines.length >= MAX_TRANSCRIPT_LINES) {
      this.droppedLines += 1;
      return;
    }
    this.lines.push({ role, text: trimmed.slice(0, MAX_TRANSCRIPT_LINE_CHARS) });
  }

  /** Stores (or replaces) the answer to a survey question. */
  recordAnswer(question: string, answer: string): void {
    this.answers.set(question, answer.trim().slice(0, MAX_ANSWER_CHARS));
  }

  get surveyAnswers(): SurveyAnswer[] {
    return [...this.answers].map(([question, answer]) => ({ question, answer }));
  }

  hasAnswer(question: string): boolean {
    return this.answers.has(question);
  }

  /** The caller's number on an inbound call (`sip.phoneNumber`): it goes into the result's summary, never into logs. */
  setCaller(phoneNumber: string): void {
    const trimmed = phoneNumber.trim();
    if (trimmed !== '') this.callerNumber = trimmed;
  }

  get caller(): string | undefined {
    return this.callerNumber;
  }

  /** A fact for the summary (e.g. a transfer that failed and the SIP status it failed with). */
  note(text: string): void {
    this.notes.push(text);
  }

  get transcript(): TranscriptLine[] {
    return [...this.lines];
  }

  /**
   * Writes the call's one outcome: the decision, else `fallback`, else `failed`, and resolves to it. Every later
   * call returns the same promise; it never rejects (a sink that keeps failing is logged).
   */
  finish(fallback?: OutcomeDecision): Promise<CallResult> {
    this.finishing ??= this.write(
      this.decided ?? fallback ?? { outcome: 'failed', reason: 'the call ended without an outcome' },
    );
    return this.finishing;
  }

  private summarize(decision: OutcomeDecision): string {
    const parts: string[] = [`${decision.outcome}: ${decision.reason}`];
    if (this.callerNumber) parts.push(`inbound call from ${this.callerNumber}`);
    if (decision.transfer) parts.push(`${decision.transfer.mode} transfer to ${decision.transfer.target}`);
    if (this.answers.size > 0) parts.push(`${this.answers.size} survey answer${this.answers.size === 1 ? '' : 's'}`);
    parts.push(...this.notes);
    const calleeTurns = this.lines.filter((line) => line.role === 'callee').length;
    const agentTurns = this.lines.filter((line) => line.role === 'agent').length;
    parts.push(`${calleeTurns} callee and ${agentTurns} agent turns`);
    return parts.join('; ');
  }

  private async write(decision: OutcomeDecision): Promise<CallResult> {
    const endedAt = this.clock.now();
    const transcript = [...this.lines];
    if (this.droppedLines > 0) transcript.push({ role: 'system', text: `${this.droppedLines} more lines not kept` });
    const result: CallResult = {
      callId: this.options.callId ?? 'unreported',
      campaignId: this.options.campaignId,
      outcome: decision.outcome,
      reason: decision.reason,
      reportedBy: 'agent',
      phoneNumber: this.callerNumber,
      attempt: this.options.attempt,
      sipStatusCode: decision.sipStatusCode,
      sipStatus: decision.sipStatus,
      durationMs: this.connectedAt === undefined ? 0 : Math.max(0, endedAt - this.connectedAt),
      transfer: decision.transfer,
      surveyAnswers: this.answers.size > 0 ? this.surveyAnswers : undefined,
      summary: this.summarize(decision),
      transcript,
      endedAt,
    };
    const log = this.options.logger;
    if (!this.options.callId || !this.options.sink) {
      log.info({ outcome: result.outcome, reason: result.reason }, 'call ended (no call record to report to)');
      return result;
    }
    const callId = this.options.logCallId ?? result.callId;
    for (let attempt = 1; attempt <= REPORT_ATTEMPTS; attempt += 1) {
      try {
        const status = await this.options.sink.report(result);
        if (status === 'pending') log.warn({ callId, outcome: result.outcome, reason: result.reason }, 'call outcome spooled: Redis has not taken it yet');
        else log.info({ callId, outcome: result.outcome, reason: result.reason }, 'call outcome reported');
        return result;
      } catch (err) {
        log.error({ err, callId, attempt }, 'could not report the call outcome');
        if (attempt < REPORT_ATTEMPTS) await this.clock.sleep(REPORT_RETRY_MS * attempt);
      }
    }
    return result;
  }
}
