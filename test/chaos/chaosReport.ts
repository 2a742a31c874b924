/**
 * The chaos test's figures, computed from what the simulator (the carrier's side) saw, not from the dialer's view:
 * dials per attempt room, dials after a number's final answer, calls without a terminal record, outcomes that differ
 * from the number's script, and the most CreateSIPParticipant arrivals in any rolling second.
 */
import { UNAVAILABLE_UNKNOWN_REASON } from '../../src/consumer/attemptEnd.js';
import type { CallState, Outcome } from '../../src/core/outcomes.js';
import { maxInRollingWindow } from '../helpers/rollingWindow.js';
import type { ConnectionClose, DialArrival } from './apiProxy.js';
import type { ChaosNumber, ScriptKind } from './chaosScenario.js';

/** One CreateSIPParticipant the simulator received, and what became of that call. */
export interface SimCallLog {
  room: string;
  phoneNumber: string;
  /** The simulator's per-number count of requests that reached the phone network. */
  attempt: number | undefined;
  behavior: string | undefined;
  receivedAt: number;
  ringingAt: number | undefined;
  answeredAt: number | undefined;
  endedAt: number | undefined;
  result: 'refused' | 'pending' | 'answered' | 'failed';
  endReason: string | undefined;
  sipStatusCode: number | undefined;
  twirpCode: string | undefined;
  /** The dialer's HTTP request went away before the reply (consumer killed, connection reset). */
  clientDisconnected: boolean;
}

export interface SimEventLog {
  name: string;
  at: number;
  room: string;
  sipStatusCode: number | undefined;
  reason: string | undefined;
}

/** What the sim host writes on `dump`. */
export interface HostDump {
  calls: SimCallLog[];
  events: SimEventLog[];
  /** The sim host's own event-loop stalls (≥ 200 ms): `at` is when it ran again. */
  stalls: { at: number; ms: number }[];
}

/** What the sim host answers to `status`. */
export interface HostStatus {
  /** Calls not yet answered or failed. */
  dialing: number;
  ringing: number;
  /** Answered calls not yet ended: an agent is talking and will report. */
  inConversation: number;
  /** CreateSIPParticipant requests so far. */
  dials: number;
  lastDialAt: number | undefined;
}

/** A call record as the test reads it back. */
export interface RecordView {
  callId: string;
  state: CallState;
  outcome: Outcome | undefined;
  attempts: number;
  reason: string | undefined;
}

/** A call of the campaign: its id and the number it was enqueued for. */
export interface ChaosCall extends ChaosNumber {
  callId: string;
}

/** Final SIP answers: once a number gave one (or picked up), it must never ring again. */
export const FINAL_SIP_STATUSES: ReadonlySet<number> = new Set([404, 603, 604, 607, 608]);

export type Violation =
  | { kind: 'double_dial'; call: ChaosCall | undefined; room: string; dials: number }
  | { kind: 're_ring'; call: ChaosCall | undefined; phoneNumber: string; finalAt: number; finalWhat: string; room: string; at: number }
  | { kind: 'lost'; call: ChaosCall; record: RecordView | undefined }
  | { kind: 'wrong'; call: ChaosCall; record: RecordView }
  | { kind: 'cps'; windowStart: number; starts: number };

export interface ChaosFigures {
  calls: number;
  maxDialsPerAttempt: number;
  reRingsAfterFinal: number;
  outcomesLost: number;
  outcomesWrong: number;
  /**
   * Calls scripted to answer 404 whose 404 never reached a dialer that lived to record it (the request's connection
   * was gone: a consumer killed, LiveKit's door closed; or the consumer was killed after the answer went out) and which ended `failed` for that reason (UNAVAILABLE_UNKNOWN_REASON): LiveKit keeps
   * no SIP status, so a 404 cannot be told from a 480 any more and the dialer does not dial the number again. Not
   * counted as wrong; printed so a run shows how often it happened.
   */
  outcomesUnknowable: number;
  maxStartsPerRollingSecond: number;
  cps: number;
}

export interface ChaosAnalysis {
  figures: ChaosFigures;
  violations: Violation[];
  /** The calls counted in `outcomesUnknowable`, for the run's details. */
  unheard: ChaosCall[];
}

const ROLLING_WINDOW_MS = 1000;
const ROOM_PATTERN = /^call-(.+)-(\d+)$/;

/** The call id in a consumer's attempt room `call-<id>-<n>`, or undefined for any other room. */
export function callIdOfRoom(room: string): string | undefined {
  return ROOM_PATTERN.exec(room)?.[1];
}

/** When a number gave its final answer (picked up, or a final SIP status), and which; undefined if it never did. */
function finalAnswer(dials: readonly SimCallLog[]): { at: number; what: string } | undefined {
  let best: { at: number; what: string } | undefined;
  for (const dial of dials) {
    let candidate: { at: number; what: string } | undefined;
    if (dial.result === 'answered' && dial.answeredAt !== undefined) candidate = { at: dial.answeredAt, what: `answered in ${dial.room}` };
    else if (dial.sipStatusCode !== undefined && FINAL_SIP_STATUSES.has(dial.sipStatusCode) && dial.endedAt !== undefined) {
      candidate = { at: dial.endedAt, what: `SIP ${dial.sipStatusCode} in ${dial.room}` };
    }
    if (candidate && (!best || candidate.at < best.at)) best = candidate;
  }
  return best;
}

const SIP_NOT_FOUND = 404;

/**
 * A call scripted to answer 404 that ended `failed` because its 404 was never heard: every 404 the number gave went to
 * a request whose dialer was gone (see ChaosFigures.outcomesUnknowable).
 */
/**
 * A consumer's SIGKILL, and its connection's close, count for a 404 answered up to this long after them: the test
 * process, the proxy and the sim host stamp times apart, and the sim may write its answer before it reads the close.
 */
const ANSWER_AFTER_KILL_SLACK_MS = 1000;
/** A killed process's connections close within this long of its SIGKILL (the kernel closes them; loaded machine). */
const KILL_TO_CLOSE_MAX_MS = 5000;

/** What proves a 404's answer died with its consumer: the proxy's connection closes and the test's kill times. */
interface LostAnswerEvidence {
  arrivals: readonly DialArrival[];
  closes: readonly ConnectionClose[];
  consumerKills: readonly number[];
}

/**
 * The 404 reached no dialer that lived to record it: the request's connection was gone before the answer
 * (`clientDisconnected`), or the answer went out and the consumer on that connection was SIGKILLed after it (its
 * connection closed by the client side within KILL_TO_CLOSE_MAX_MS of a kill): a process killed between reading an
 * answer and writing the attempt's end takes the answer with it, and LiveKit keeps none.
 */
function answerLostWithItsConsumer(dial: SimCallLog, evidence: LostAnswerEvidence): boolean {
  if (dial.clientDisconnected) return true;
  const answeredAt = dial.endedAt;
  const clientPort = evidence.arrivals.find((a) => a.room === dial.room)?.clientPort;
  if (answeredAt === undefined || clientPort === undefined) return false;
  const close = evidence.closes.find((c) => c.clientPort === clientPort && c.by === 'client' && c.at >= answeredAt - ANSWER_AFTER_KILL_SLACK_MS);
  if (!close) return false;
  return evidence.consumerKills.some(
    (killedAt) => killedAt >= answeredAt - ANSWER_AFTER_KILL_SLACK_MS && killedAt <= close.at && close.at - killedAt <= KILL_TO_CLOSE_MAX_MS,
  );
}

function notFoundNeverHeard(call: ChaosCall, record: RecordView, dials: readonly SimCallLog[], evidence: LostAnswerEvidence): boolean {
  if (call.expected !== 'invalid_number' || record.outcome !== 'failed' || record.reason !== UNAVAILABLE_UNKNOWN_REASON) return false;
  const notFound = dials.filter((d) => d.sipStatusCode === SIP_NOT_FOUND);
  return notFound.length > 0 && notFound.every((d) => answerLostWithItsConsumer(d, evidence));
}

/** The first window [t, t + 1 s) holding `count` arrivals. */
function busiestWindowStart(times: readonly number[], count: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  for (let i = 0; i + count - 1 < sorted.length; i++) {
    const first = sorted[i] as number;
    if ((sorted[i + count - 1] as number) - first < ROLLING_WINDOW_MS) return first;
  }
  return sorted[0] ?? 0;
}

/**
 * Computes the figures and lists every violation, from the simulator's log, the dial arrivals at LiveKit's door
 * (the API proxy's timestamps: the starts a carrier counts) and the call records.
 */
export function analyseChaosRun(input: {
  calls: readonly ChaosCall[];
  simCalls: readonly SimCallLog[];
  arrivals: readonly DialArrival[];
  records: ReadonlyMap<string, RecordView>;
  cps: number;
  /** The API proxy's connection closes (ProxyDump.closes); none when not given. */
  closes?: readonly ConnectionClose[];
  /** When the test SIGKILLed a consumer (ms since the epoch); none when not given. */
  consumerKills?: readonly number[];
}): ChaosAnalysis {
  const { calls, simCalls, arrivals, records, cps } = input;
  const evidence: LostAnswerEvidence = { arrivals, closes: input.closes ?? [], consumerKills: input.consumerKills ?? [] };
  const byCallId = new Map(calls.map((c) => [c.callId, c]));
  const byNumber = new Map(calls.map((c) => [c.phoneNumber, c]));
  const violations: Violation[] = [];

  const dialsPerRoom = new Map<string, number>();
  for (const dial of simCalls) dialsPerRoom.set(dial.room, (dialsPerRoom.get(dial.room) ?? 0) + 1);
  let maxDialsPerAttempt = 0;
  for (const [room, dials] of dialsPerRoom) {
    maxDialsPerAttempt = Math.max(maxDialsPerAttempt, dials);
    const callId = callIdOfRoom(room);
    if (dials > 1) violations.push({ kind: 'double_dial', call: callId === undefined ? undefined : byCallId.get(callId), room, dials });
  }

  const dialsPerNumber = new Map<string, SimCallLog[]>();
  for (const dial of simCalls) dialsPerNumber.set(dial.phoneNumber, [...(dialsPerNumber.get(dial.phoneNumber) ?? []), dial]);
  let reRings = 0;
  for (const [phoneNumber, dials] of dialsPerNumber) {
    const final = finalAnswer(dials);
    if (!final) continue;
    for (const dial of dials) {
      if (dial.receivedAt <= final.at) continue;
      reRings += 1;
      violations.push({
        kind: 're_ring',
        call: byNumber.get(phoneNumber),
        phoneNumber,
        finalAt: final.at,
        finalWhat: final.what,
        room: dial.room,
        at: dial.receivedAt,
      });
    }
  }

  let lost = 0;
  let wrong = 0;
  const unheard: ChaosCall[] = [];
  for (const call of calls) {
    const record = records.get(call.callId);
    if (!record || record.state !== 'terminal') {
      lost += 1;
      violations.push({ kind: 'lost', call, record });
    } else if (record.outcome !== call.expected && notFoundNeverHeard(call, record, dialsPerNumber.get(call.phoneNumber) ?? [], evidence)) {
      unheard.push(call);
    } else if (record.outcome !== call.expected) {
      wrong += 1;
      violations.push({ kind: 'wrong', call, record });
    }
  }

  const starts = arrivals.map((a) => a.at);
  const maxStarts = maxInRollingWindow(starts, ROLLING_WINDOW_MS);
  if (maxStarts > cps) violations.push({ kind: 'cps', windowStart: busiestWindowStart(starts, maxStarts), starts: maxStarts });

  return {
    figures: {
      calls: calls.length,
      maxDialsPerAttempt,
      reRingsAfterFinal: reRings,
      outcomesLost: lost,
      outcomesWrong: wrong,
      outcomesUnknowable: unheard.length,
      maxStartsPerRollingSecond: maxStarts,
      cps,
    },
    violations,
    unheard,
  };
}

/** What the run did to the dialer, for the printed line. */
export interface ChaosActions {
  consumerKills: number;
  redisRestarts: number;
  livekitOutageS: number;
  redisBlockS: number;
  /** The Redis topology (CHAOS_REDIS_TOPOLOGY); unset or `single`: the line reads as before topologies existed. */
  topology?: string;
  /** Sentinel: seconds from the primary's SIGKILL until the promoted replica took writes. */
  failoverS?: number;
  /** Cluster: seconds from the slot's master's SIGTERM until the cluster was ok again. */
  nodeBackS?: number;
  /** CALL_SHARDS of every process (shown when above 1). */
  callShards?: number;
}

/** The one line README shows. */
export function formatChaosLine(figures: ChaosFigures, actions: ChaosActions): string {
  const topology = actions.topology === undefined || actions.topology === 'single' ? [] : [`topology=${actions.topology}`];
  if (actions.failoverS !== undefined) topology.push(`failover_s=${actions.failoverS.toFixed(1)}`);
  if (actions.nodeBackS !== undefined) topology.push(`node_back_s=${actions.nodeBackS.toFixed(1)}`);
  if (actions.callShards !== undefined && actions.callShards > 1) topology.push(`call_shards=${actions.callShards}`);
  return [
    'chaos:',
    ...topology,
    `calls=${figures.calls}`,
    `kills=${actions.consumerKills}`,
    `redis_restarts=${actions.redisRestarts}`,
    `livekit_outage_s=${actions.livekitOutageS}`,
    `redis_block_s=${actions.redisBlockS}`,
    `max_dials_per_attempt=${figures.maxDialsPerAttempt}`,
    `re_rings_after_final=${figures.reRingsAfterFinal}`,
    `outcomes_lost=${figures.outcomesLost}`,
    `outcomes_wrong=${figures.outcomesWrong}`,
    `outcomes_404_unheard=${figures.outcomesUnknowable}`,
    `max_starts_per_rolling_s=${figures.maxStartsPerRollingSecond}/${figures.cps}`,
  ].join(' ');
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** One dial as the carrier saw it, relative to `t0`: `+12.3s dial call-…-1 ring +12.4s 603 +14.1s (client gone)`. */
function describeDial(dial: SimCallLog, t0: number): string {
  const parts = [`+${seconds(dial.receivedAt - t0)} dial ${dial.room}`];
  if (dial.ringingAt !== undefined) parts.push(`ring +${seconds(dial.ringingAt - t0)}`);
  if (dial.answeredAt !== undefined) parts.push(`answered +${seconds(dial.answeredAt - t0)}`);
  if (dial.result === 'failed' && dial.endedAt !== undefined) {
    const what = dial.sipStatusCode !== undefined ? `SIP ${dial.sipStatusCode}` : `${dial.twirpCode ?? 'error'} (${dial.endReason ?? '?'})`;
    parts.push(`${what} +${seconds(dial.endedAt - t0)}`);
  } else if (dial.result === 'answered' && dial.endedAt !== undefined) {
    parts.push(`ended (${dial.endReason ?? '?'}) +${seconds(dial.endedAt - t0)}`);
  } else if (dial.result === 'pending') {
    parts.push('still pending');
  }
  if (dial.clientDisconnected) parts.push('[dialer request gone]');
  return parts.join(' ');
}

const EVENT_LABELS: Readonly<Record<string, string>> = {
  dispatch_created: 'agent dispatched',
  room_deleted: 'room deleted',
  call_dialing: 'dialing',
  call_ringing: 'ringing',
  call_answered: 'answered',
  call_failed: 'failed',
  call_ended: 'ended',
};

/**
 * The number's whole story on the carrier's side: one line per dial, then per attempt room what the simulator saw
 * happen in it (agent dispatches, room deletions, the call's progress), in order.
 */
export function numberHistory(phoneNumber: string, call: ChaosCall | undefined, context: ReportContext): string[] {
  const { simCalls, events, t0 } = context;
  const dials = simCalls.filter((d) => d.phoneNumber === phoneNumber);
  const lines = dials.map((d) => `      ${describeDial(d, t0)}`);
  for (const d of dials) {
    const clientPort = context.arrivals.find((a) => a.room === d.room)?.clientPort;
    const close = context.closes?.find((c) => c.clientPort === clientPort && c.at >= d.receivedAt);
    if (clientPort !== undefined) {
      lines.push(`      ${d.room} came over connection :${clientPort}${close ? `, closed by ${close.by} +${seconds(close.at - t0)}` : ', open at the end'}`);
    }
  }
  if (context.consumerKills && context.consumerKills.length > 0) {
    lines.push(`      consumer SIGKILLs at ${context.consumerKills.map((k) => `+${seconds(k - t0)}`).join(', ')}`);
  }
  const rooms = new Set(dials.map((d) => d.room));
  for (const event of events) if (call && callIdOfRoom(event.room) === call.callId) rooms.add(event.room);
  for (const room of [...rooms].sort()) {
    const inRoom = events.filter((e) => e.room === room);
    if (inRoom.length === 0) continue;
    const told = inRoom.map((e) => `${EVENT_LABELS[e.name] ?? e.name}${e.sipStatusCode !== undefined ? ` ${e.sipStatusCode}` : ''} +${seconds(e.at - t0)}`);
    lines.push(`      events in ${room}: ${told.join(', ')}`);
  }
  return lines;
}

/** What the report knows about the calls: their records and, for calls that went wrong, their dial job at the end. */
export interface ReportContext {
  /** The API proxy's own event-loop stalls: an over-limit second right after one may be the proxy's doing. */
  proxyStalls?: readonly { at: number; ms: number }[];
  simCalls: readonly SimCallLog[];
  /** The simulator's events (dispatches, room deletions, call progress), for each violation's rooms. */
  events: readonly SimEventLog[];
  arrivals: readonly DialArrival[];
  /** The API proxy's connection closes, to show whether a dial's consumer was gone when its answer came. */
  closes?: readonly ConnectionClose[];
  /** When the test SIGKILLed consumers. */
  consumerKills?: readonly number[];
  records: ReadonlyMap<string, RecordView>;
  /** Call id → the BullMQ dial job's end state, e.g. `failed, attemptsMade 1, "job stalled more than allowable limit"`. */
  jobs?: ReadonlyMap<string, string>;
  /** Times are shown relative to this (the enqueue). */
  t0: number;
  limitPerKind?: number;
}

function describeCall(call: ChaosCall | undefined, context: ReportContext): string {
  const { records } = context;
  if (!call) return 'call not in the campaign';
  const record = records.get(call.callId);
  const ended = record ? `${record.state}${record.outcome ? ` ${record.outcome}` : ''}, attempts ${record.attempts}` : 'no record';
  const jobState = context.jobs?.get(call.callId);
  const job = jobState ? `; dial job: ${jobState}` : '';
  return `${call.callId} (${call.kind as ScriptKind}, expected ${call.expected}; record: ${ended}${record?.reason ? `, "${record.reason}"` : ''}${job})`;
}

const VIOLATION_TITLES: Readonly<Record<Violation['kind'], string>> = {
  double_dial: 'attempt rooms dialed more than once',
  re_ring: 'dials after the number gave a final answer',
  lost: 'calls without a terminal outcome',
  wrong: 'outcomes differing from the script',
  cps: 'rolling seconds over DIAL_CPS (CreateSIPParticipant arrivals at the API proxy)',
};

/** Every violation grouped by kind, each with the call and the number's dials as the simulator saw them. */
export function formatViolations(violations: readonly Violation[], context: ReportContext): string {
  const lines: string[] = [];
  const limit = context.limitPerKind ?? Number.POSITIVE_INFINITY;
  for (const kind of Object.keys(VIOLATION_TITLES) as Violation['kind'][]) {
    const ofKind = violations.filter((v) => v.kind === kind);
    if (ofKind.length === 0) continue;
    lines.push(`${VIOLATION_TITLES[kind]}: ${ofKind.length}`);
    for (const v of ofKind.slice(0, limit)) {
      switch (v.kind) {
        case 'double_dial':
          lines.push(`  ${v.room} dialed ${v.dials}× — ${describeCall(v.call, context)}`);
          if (v.call) lines.push(...numberHistory(v.call.phoneNumber, v.call, context));
          break;
        case 're_ring':
          lines.push(
            `  ${v.room} dialed at +${seconds(v.at - context.t0)} after ${v.finalWhat} at +${seconds(v.finalAt - context.t0)} — ${describeCall(v.call, context)}`,
          );
          lines.push(...numberHistory(v.phoneNumber, v.call, context));
          break;
        case 'lost':
        case 'wrong':
          lines.push(`  ${describeCall(v.call, context)}`);
          lines.push(...numberHistory(v.call.phoneNumber, v.call, context));
          break;
        case 'cps':
          lines.push(`  ${v.starts} CreateSIPParticipant arrivals in the second from +${seconds(v.windowStart - context.t0)}:`);
          for (const arrival of context.arrivals.filter((a) => a.at >= v.windowStart && a.at < v.windowStart + ROLLING_WINDOW_MS)) {
            lines.push(`      +${((arrival.at - context.t0) / 1000).toFixed(3)}s ${arrival.room ?? '(room not read)'} (connection :${arrival.clientPort ?? '?'})`);
          }
          {
            const near = (context.proxyStalls ?? []).filter((st) => st.at >= v.windowStart - ROLLING_WINDOW_MS && st.at < v.windowStart + ROLLING_WINDOW_MS);
            lines.push(
              near.length > 0
                ? `      the API proxy itself stalled around it: ${near.map((st) => `${st.ms} ms until +${seconds(st.at - context.t0)}`).join(', ')}`
                : '      the API proxy did not stall around it (≥ 100 ms): the dials left the dialer this close together',
            );
          }
          break;
      }
    }
    if (ofKind.length > limit) lines.push(`  … and ${ofKind.length - limit} more (see the details file)`);
  }
  return lines.join('\n');
}
