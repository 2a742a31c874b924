/**
 * The callee of one simulated call, in agents-js text mode: the parts of runCall that need real media, played from
 * the simulator's scenario. A session opener that starts a text-mode AgentSession on a scripted model and, once the
 * conversation begins, feeds the callee's lines with session.run; a DTMF sender that answers as the scenario's IVR;
 * and an AMD that knows whether an answering machine picked up.
 */
import { voice } from '@livekit/agents';
import type { AmdFactory, ModelFactory, SessionOpener, SessionRequest } from '../agent/entry.js';
import type { DtmfSender } from '../agent/callController.js';
import type { AnsweringMachineDetector } from '../agent/connectCallee.js';
import type { Logger } from '../core/logger.js';
import { SECOND, sleep } from '../core/time.js';
import type { CallAnsweredEvent, CallEndedEvent, Callee, SimEvents } from '../sim/index.js';
import { buildCallScript, greetingRule, ScriptedLLM, type CallScript } from './calleeScript.js';
import type { SimJob } from './simJob.js';
import type { SimRoom } from './simRoom.js';
import { errorMessage } from '../core/errors.js';

/** A call the agent placed may be answered before the simulator's event says by whom: wait this long for it. */
const ANSWER_EVENT_WAIT_MS = 2 * SECOND;
/** Longest wait for the agent's greeting before the caller speaks. */
const GREETING_TIMEOUT_MS = 10 * SECOND;
/** Who answers when the simulator never said (a default scenario callee). */
const UNKNOWN_CALLEE: Callee = { kind: 'human', lines: ['Hello?'] };

/** Resolves to `value` after `ms`, or earlier (also to `value`) when `signal` aborts. */
function delay<T>(ms: number, value: T, signal?: AbortSignal): Promise<T> {
  return sleep(ms, signal).then(
    () => value,
    () => value,
  );
}

export class ScriptedCallee {
  /** The agent's model: rules come from the callee's script once it is known. */
  readonly llm = new ScriptedLLM([]);
  private readonly answered = new Map<string, Callee>();
  /** Callees whose call has ended (hung up, transferred away, the room gone). */
  private readonly hungUp = new Set<string>();
  private readonly answerWaiters = new Set<() => void>();
  private script: CallScript | undefined;
  /** The callee's lines still to say (an IVR's reply to keys goes first). */
  private readonly pending: string[] = [];
  /** Aborted when the call is over: every wait here ends. */
  private readonly over = new AbortController();
  private readonly stopListening: () => void;
  private handOver: () => void = () => undefined;
  /**
   * Resolves when the agent's part of the call is over but the call goes on: a warm transfer left the caller with the
   * operator (runCall then waits for the caller to leave, to delete the room).
   */
  readonly handedOver = new Promise<void>((resolve) => {
    this.handOver = resolve;
  });

  constructor(
    room: string,
    events: SimEvents,
    private readonly job: SimJob,
    private readonly turnTimeoutMs: number,
    private readonly log: Logger,
  ) {
    const onAnswered = (ev: CallAnsweredEvent) => {
      if (ev.room !== room) return;
      this.answered.set(ev.identity, ev.callee);
      for (const wake of this.answerWaiters) wake();
    };
    // A callee whose call ended says nothing more.
    const onEnded = (ev: CallEndedEvent) => {
      if (ev.room === room) this.hungUp.add(ev.identity);
    };
    events.on('call_answered', onAnswered);
    events.on('call_ended', onEnded);
    this.stopListening = () => {
      events.off('call_answered', onAnswered);
      events.off('call_ended', onEnded);
    };
  }

  /** The model for the session and for AMD's classifier (the harness's AMD never asks it). */
  readonly models: ModelFactory = () => ({ llm: this.llm, classifierLlm: this.llm });

  /** Opens the text-mode session, and feeds the callee once the conversation begins. */
  readonly openSession: SessionOpener<SimRoom> = async (request) => {
    if (request.inbound) this.llm.add(greetingRule());
    const session = new voice.AgentSession({ llm: this.llm, vad: null, userAwayTimeout: null, turnHandling: { turnDetection: 'manual' } });
    await session.start({ agent: request.agent });
    this.job.addSession(session);
    void request.call.done().then(() => {
      if (request.call.roomKept) this.handOver();
    });
    session.once(voice.AgentSessionEventTypes.Close, () => this.over.abort());
    void this.converse(session, request).catch((err: unknown) => this.log.error({ err }, 'the scripted callee failed'));
    return session;
  };

  /** `send_dtmf_events`: the scenario's IVR answers the keys (its reply is the callee's next line). */
  readonly sendDtmf: DtmfSender = async (digits) => {
    const keys = digits.join('');
    const reply = this.script?.ivrReply(keys);
    if (reply !== undefined) this.pending.unshift(reply);
    return `sent DTMF ${keys}`;
  };

  /** AMD as the scenario tells it: an answering machine (a `voicemail` callee) or a person. */
  readonly detectAnsweringMachine: AmdFactory = (_session, options) => this.detector(options.participantIdentity);

  /** Ends every wait (the job is over) and stops listening to the simulator. */
  close(): void {
    this.over.abort();
    this.stopListening();
  }

  /** Who answered `identity`'s call; waits up to `waitMs` for the simulator's event (undefined if none came). */
  private async calleeOf(identity: string | undefined, waitMs: number): Promise<Callee | undefined> {
    if (identity === undefined) return undefined;
    const deadline = AbortSignal.any([this.over.signal, AbortSignal.timeout(waitMs)]);
    while (!this.answered.has(identity) && !deadline.aborted) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.answerWaiters.delete(wake);
          deadline.removeEventListener('abort', wake);
          resolve();
        };
        this.answerWaiters.add(wake);
        deadline.addEventListener('abort', wake, { once: true });
      });
    }
    return this.answered.get(identity);
  }

  private detector(identity: string | undefined): AnsweringMachineDetector {
    return {
      execute: async () => {
        const callee = await this.calleeOf(identity, ANSWER_EVENT_WAIT_MS);
        const machine = callee?.kind === 'voicemail';
        return {
          type: 'amd_prediction',
          category: machine ? voice.AMDCategory.MACHINE_VM : voice.AMDCategory.HUMAN,
          reason: 'the simulated callee',
          transcript: callee?.lines?.[0] ?? '',
          rawResponse: '',
          isMachine: machine,
          speechDurationMs: 0,
          delayMs: 0,
        };
      },
      aclose: async () => undefined,
    };
  }

  /** Once the call is connected: builds the callee's script and says its lines, one turn at a time. */
  private async converse(session: voice.AgentSession, request: SessionRequest<SimRoom>): Promise<void> {
    const over = new Promise<false>((resolve) => {
      if (this.over.signal.aborted) resolve(false);
      this.over.signal.addEventListener('abort', () => resolve(false), { once: true });
    });
    const begun = await Promise.race([request.conversing.then(() => true), over]);
    if (!begun) return;
    const callee = (await this.calleeOf(request.participantIdentity, ANSWER_EVENT_WAIT_MS)) ?? UNKNOWN_CALLEE;
    this.script = buildCallScript(callee, request.profile, { inbound: request.inbound, llm: this.llm });
    this.pending.push(...this.script.turns);
    // Inbound: the agent speaks first; the caller answers its greeting.
    if (request.inbound) await this.agentSpoke(session);

    const speaking = () => !request.call.isEnding && !this.over.signal.aborted && !this.hungUp.has(request.participantIdentity ?? '');
    for (let turn = this.pending.shift(); turn !== undefined && speaking(); turn = this.pending.shift()) {
      let finished: Promise<boolean>;
      try {
        finished = session.run({ userInput: turn }).wait().then(
          () => true,
          () => true,
        );
      } catch (err) {
        this.log.debug({ err: errorMessage(err) }, 'the session took no more turns');
        return;
      }
      if (!(await Promise.race([finished, delay(this.turnTimeoutMs, false, this.over.signal)])) && !this.over.signal.aborted) {
        this.log.warn({ turn }, 'a scripted turn did not finish in time');
      }
    }
    // The callee has nothing more to say: the silence timeout (or a tool still running) ends the call.
  }

  /** Resolves once the agent has said something (at most GREETING_TIMEOUT_MS). */
  private async agentSpoke(session: voice.AgentSession): Promise<void> {
    const said = () => session.history.items.some((item) => item.type === 'message' && item.role === 'assistant');
    if (said()) return;
    const timeout = new AbortController();
    await Promise.race([
      new Promise<void>((resolve) => {
        const onItem = (ev: voice.ConversationItemAddedEvent) => {
          if (ev.item.type !== 'message' || ev.item.role !== 'assistant') return;
          session.off(voice.AgentSessionEventTypes.ConversationItemAdded, onItem);
          resolve();
        };
        session.on(voice.AgentSessionEventTypes.ConversationItemAdded, onItem);
        timeout.signal.addEventListener('abort', () => session.off(voice.AgentSessionEventTypes.ConversationItemAdded, onItem));
      }),
      delay(GREETING_TIMEOUT_MS, undefined, AbortSignal.any([this.over.signal, timeout.signal])),
    ]);
    timeout.abort();
  }
}
