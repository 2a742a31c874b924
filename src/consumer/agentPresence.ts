/**
 * After the callee answers, the agent must be in the room. LiveKit drops a dispatch it finds no agent worker for
 * (none registered under the name, or every one at its load threshold: agents-js marks a host full at load 0.7 and
 * livekit-server logs "no servers available"), yet the consumer's CreateSIPParticipant still rings the number: the
 * callee would answer into a room where nobody speaks, and the call would wait for the outcome watchdog. The consumer
 * looks for the agent's participant (ParticipantInfo kind AGENT, which agents join as: identity `agent-<job id>` in
 * agents-js) right after the answer and, while it is absent, again for up to AGENT_JOIN_GRACE_MS. At the grace it asks
 * LiveKit whether the dispatch has a job (AgentDispatchService ListDispatch: AgentDispatch.state.jobs, which
 * livekit-server fills once a worker accepted the job): an agent whose job is assigned but whose process is still
 * connecting (agents-js takes seconds under load) is waited for up to AGENT_JOIN_ASSIGNED_MAX_MS. With no agent by
 * then, the consumer ends the attempt on the call's record first (one Redis script: from then on the record refuses an
 * agent outcome for that attempt, so an agent that joins in the last instant cannot end the call `answered`), then
 * hangs up (deletes the room): one outcome, retried like any failed attempt.
 */
import { JobStatus, ParticipantInfo_Kind } from '@livekit/protocol';
import { ServerError, type AgentDispatchClient, type RoomServiceClient } from 'livekit-server-sdk';
import type { CallStore } from '../core/callStore.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { terminalTransition, type CallResult } from '../core/outcomes.js';
import { MINUTE, SECOND, type Clock } from '../core/time.js';
import type { DialAttemptResult } from './dialAttempt.js';

/** How often the room is looked at again while no agent is there. */
export const AGENT_PRESENCE_POLL_MS = 250;
/** The reason an answered attempt without an agent ends with (retried as `failed`). */
export const NO_AGENT_REASON = 'no agent joined the room';

/** What the room showed within the grace. */
export type AgentPresence =
  | { kind: 'present'; identity: string; waitedMs: number }
  /** `assignedJob`: a job was assigned (ListDispatch) but its agent did not join within the longer bound either. */
  | { kind: 'absent'; waitedMs: number; assignedJob?: string; dispatchError?: string }
  /** The callee (`calleeIdentity`) is not in the room: there is nobody to hang up on. */
  | { kind: 'callee_gone'; waitedMs: number }
  /** LiveKit could not be asked at all: nothing is known, so nothing is hung up. */
  | { kind: 'unknown'; reason: string; waitedMs: number };

type Rooms = Pick<RoomServiceClient, 'listParticipants'>;
type Dispatches = Pick<AgentDispatchClient, 'listDispatch'>;

/** The id of a job of `room`'s dispatches that is assigned and not ended (JS_PENDING or JS_RUNNING), if any. */
export async function assignedJob(dispatches: Dispatches, room: string): Promise<string | undefined> {
  for (const dispatch of await dispatches.listDispatch(room)) {
    for (const job of dispatch.state?.jobs ?? []) {
      const status = job.state?.status ?? JobStatus.JS_PENDING;
      if (status !== JobStatus.JS_SUCCESS && status !== JobStatus.JS_FAILED) return job.id;
    }
  }
  return undefined;
}

export interface AgentWaitOptions {
  /** How long an agent may take to join when its dispatch has no job assigned (AGENT_JOIN_GRACE_MS). */
  graceMs: number;
  /**
   * How long, from the same start, an agent whose job is assigned may take to join (AGENT_JOIN_ASSIGNED_MAX_MS; the
   * grace when smaller). Without `dispatches` the grace alone counts.
   */
  assignedMaxMs?: number;
  /** Where the room's dispatch and its jobs are asked about, once the grace has passed. */
  dispatches?: Dispatches;
  /** The callee's identity: when given and not in the room, the answer is `callee_gone` (nothing to hang up). */
  calleeIdentity?: string;
  clock: Clock;
  pollMs?: number;
  /** Called once, when the grace has passed with an assigned job whose agent has not joined yet. */
  onJobAssigned?: (jobId: string) => void;
}

/**
 * Looks for an agent participant in `room` at once and, while there is none, every AGENT_PRESENCE_POLL_MS until
 * `graceMs` has passed on `clock`; then, while the room's dispatch has a job assigned, on until `assignedMaxMs`.
 * `absent` needs at least one answer from LiveKit about the room; when every look failed the answer is `unknown`. A
 * ListDispatch that fails counts as no job assigned (the grace holds, as before the dispatch was asked).
 */
export async function waitForAgentInRoom(rooms: Rooms, room: string, options: AgentWaitOptions): Promise<AgentPresence> {
  const { clock, graceMs, dispatches, calleeIdentity } = options;
  const pollMs = options.pollMs ?? AGENT_PRESENCE_POLL_MS;
  const assignedMaxMs = dispatches ? Math.max(graceMs, options.assignedMaxMs ?? graceMs) : graceMs;
  const started = clock.now();
  let answered = false;
  let lastError = '';
  let job: string | undefined;
  let dispatchError: string | undefined;
  for (;;) {
    try {
      const participants = await rooms.listParticipants(room);
      const agent = participants.find((p) => p.kind === ParticipantInfo_Kind.AGENT);
      if (agent) return { kind: 'present', identity: agent.identity, waitedMs: clock.now() - started };
      if (calleeIdentity !== undefined && !participants.some((p) => p.identity === calleeIdentity)) {
        return { kind: 'callee_gone', waitedMs: clock.now() - started };
      }
      answered = true;
    } catch (err) {
      lastError = errorMessage(err);
    }
    const elapsed = clock.now() - started;
    if (elapsed >= graceMs) {
      if (!dispatches || elapsed >= assignedMaxMs) break;
      let current: string | undefined;
      try {
        current = await assignedJob(dispatches, room);
      } catch (err) {
        dispatchError = errorMessage(err);
      }
      if (current === undefined) break;
      if (job === undefined) options.onJobAssigned?.(current);
      job = current;
    }
    const left = started + (elapsed < graceMs ? graceMs : assignedMaxMs) - clock.now();
    await clock.sleep(Math.max(0, Math.min(pollMs, left)));
  }
  const waitedMs = clock.now() - started;
  if (!answered) return { kind: 'unknown', reason: lastError, waitedMs };
  return { kind: 'absent', waitedMs, ...(job !== undefined ? { assignedJob: job } : {}), ...(dispatchError !== undefined ? { dispatchError } : {}) };
}

export interface AgentCheckDeps {
  rooms: Pick<RoomServiceClient, 'listParticipants' | 'deleteRoom'>;
  /** AgentDispatchService: whether the room's dispatch has a job assigned (see waitForAgentInRoom). */
  dispatches?: Dispatches;
  store: Pick<CallStore, 'endAttemptWithoutAgent' | 'applyTransition' | 'get'>;
  /** Puts the consumer's outcome on `call-results` (the consumer's reporter). */
  report: (result: CallResult) => Promise<void>;
  /** AGENT_JOIN_GRACE_MS. */
  graceMs: number;
  /** AGENT_JOIN_ASSIGNED_MAX_MS. */
  assignedMaxMs?: number;
  clock: Clock;
  /** Counted once per attempt hung up for want of an agent (a call retried twice that way counts twice). */
  onNoAgent?: () => void;
  /**
   * The call's outcome this consumer wrote on the record itself (the last attempt's `failed`): counted here, since the
   * results worker finds its report already applied and counts only what it applies.
   */
  onCallEnded?: (outcome: CallResult['outcome']) => void;
}

/** The answered attempt being checked. */
export interface AnsweredAttempt {
  callId: string;
  campaignId: string;
  attempt: number;
  /** True when this is the call's last attempt: the call then ends `failed` here, else it is retried. */
  final: boolean;
  /** The dial job's BullMQ lock key and this holder's token. */
  lock: { key: string; token: string };
}

/**
 * The attempt's result once its agent has been looked for. An answer with an agent in the room, or a room LiveKit
 * cannot be asked about, stays `answered`. A recovered answer (a consumer that stopped while it waited) is checked the
 * same way, unless its record already left `dialing` that attempt (the call was marked connected, so the check was
 * done, or it ended) or its callee has left the room (nothing to hang up; the agent, if any, reports).
 * With no agent in time: the attempt is ended on the record first (CallStore.endAttemptWithoutAgent: only while this
 * consumer holds the job and the call is still dialing that attempt; from then on the record refuses an agent outcome
 * for it). On the last attempt the call's outcome `failed` (NO_AGENT_REASON) is written to the record and reported
 * here, with the same end time, so the results worker delivers it. Then the room is deleted (hanging up on the callee
 * and ending the dispatch) and the result is `failed` for the retry policy. If the record no longer allowed it (lock
 * lost, or the agent's outcome came first) nothing is touched and the result stays `answered`.
 */
export async function requireAgentAfterAnswer(result: DialAttemptResult, attempt: AnsweredAttempt, deps: AgentCheckDeps, log: Logger): Promise<DialAttemptResult> {
  if (result.status !== 'answered') return result;
  const { callId, campaignId } = attempt;
  if (result.recovered) {
    const record = await deps.store.get(campaignId, callId);
    if (record?.state !== 'dialing' || record.attempts !== attempt.attempt) return result;
  }
  const presence = await waitForAgentInRoom(deps.rooms, result.room, {
    graceMs: deps.graceMs,
    assignedMaxMs: deps.assignedMaxMs,
    dispatches: deps.dispatches,
    calleeIdentity: result.recovered ? result.participantIdentity : undefined,
    clock: deps.clock,
    onJobAssigned: (job) => log.info({ room: result.room, job, graceMs: deps.graceMs }, 'agent job assigned but its agent has not joined yet; waiting longer'),
  });
  switch (presence.kind) {
    case 'present':
      return result;
    case 'callee_gone':
      log.info({ room: result.room }, 'the callee of a recovered answered call has left the room; leaving the call to its agent and the outcome watchdog');
      return result;
    case 'unknown':
      log.warn({ room: result.room, reason: presence.reason }, 'could not ask LiveKit whether the agent joined the answered call; leaving it to the agent');
      return result;
    case 'absent':
      break;
  }
  const ended = await deps.store.endAttemptWithoutAgent(
    campaignId,
    callId,
    attempt.attempt,
    attempt.lock,
    { result: 'failed', kind: 'retry', reason: NO_AGENT_REASON },
    attempt.final ? 'dialing' : 'waiting_retry',
  );
  if (ended.status === 'lost_lock') {
    // another consumer may hold the job now: it does not touch a room it does not own (the watchdog ends the call)
    log.warn({ room: result.room }, 'no agent joined the answered call, but this consumer no longer holds its job; leaving the room alone');
    return result;
  }
  if (ended.status === 'not_dialing') {
    // the agent's outcome (or another write) came first: it stands, and the room is not this consumer's to end
    log.warn({ room: result.room, state: ended.state }, 'no agent was seen in the answered call, but the call moved on meanwhile; leaving it');
    return result;
  }
  deps.onNoAgent?.();
  const { waitedMs, assignedJob: job, dispatchError } = presence;
  log.warn({ room: result.room, graceMs: deps.graceMs, waitedMs, job, dispatchError }, 'no agent joined the answered call; hanging up and ending the attempt');
  if (attempt.final) {
    const outcome: CallResult = { callId, campaignId, outcome: 'failed', reason: NO_AGENT_REASON, attempt: attempt.attempt, reportedBy: 'consumer', endedAt: deps.clock.now() };
    // Written to the record before the hang-up, then reported with the same end time: the report takes the call's slot
    // on call-results (jobId = call id) before an agent hung up on could report, and the results worker delivers it.
    if ((await deps.store.applyTransition(outcome, terminalTransition(outcome))).status === 'applied') deps.onCallEnded?.(outcome.outcome);
    await deps.report(outcome);
  }
  if (await hangUp(deps, result.room, log)) {
    return { status: 'failed', room: result.room, end: { kind: 'retry', outcome: 'failed', reason: NO_AGENT_REASON } };
  }
  // The callee may still be on the line: another attempt would ring them while they hold the first one. The call ends.
  return { status: 'failed', room: result.room, end: { kind: 'final', outcome: 'failed', reason: NO_AGENT_HANGUP_FAILED_REASON } };
}

/** LiveKit's answer to deleting a room that is already gone. */
const HTTP_NOT_FOUND = 404;
/** How often a hang-up LiveKit refused (or did not answer) is tried again. */
export const HANGUP_RETRY_MS = SECOND;
/** How long a hang-up is tried before the call is given up as possibly still connected (a LiveKit outage's length). */
export const HANGUP_MAX_MS = 2 * MINUTE;
/** Why a call ends when no agent joined and the room could not be deleted either. */
export const NO_AGENT_HANGUP_FAILED_REASON =
  'no agent joined the room, and LiveKit could not be asked to hang up: not dialed again while the callee may still be on the line';

/**
 * Deletes the room of an answered call without an agent, trying again every HANGUP_RETRY_MS for up to HANGUP_MAX_MS
 * while LiveKit fails (seen in the chaos test: the hang-up fell into a 20 s LiveKit outage, the attempt was retried and
 * rang the callee again while the first call was still up). A room already gone counts as hung up. False when it never
 * went through.
 */
async function hangUp(deps: AgentCheckDeps, room: string, log: Logger): Promise<boolean> {
  const until = deps.clock.now() + HANGUP_MAX_MS;
  for (let tries = 1; ; tries += 1) {
    try {
      await deps.rooms.deleteRoom(room);
      return true;
    } catch (err) {
      if (err instanceof ServerError && err.status === HTTP_NOT_FOUND) return true;
      if (deps.clock.now() >= until) {
        log.error({ err: errorMessage(err), room, tries }, 'could not delete the room of an answered call without an agent; ending the call');
        return false;
      }
      if (tries === 1) log.warn({ err: errorMessage(err), room }, 'could not delete the room of an answered call without an agent; trying again');
    }
    await deps.clock.sleep(HANGUP_RETRY_MS);
  }
}
