/**
 * After the callee answers, the agent must be in the room. LiveKit drops a dispatch it finds no agent worker for
 * (none registered under the name, or every one at its load threshold: agents-js marks a host full at load 0.7 and
 * livekit-server logs "no servers available"), yet the consumer's CreateSIPParticipant still rings the number: the
 * callee would answer into a room where nobody speaks, and the call would wait for the outcome watchdog. The consumer
 * looks for the agent's participant (ParticipantInfo kind AGENT, which agents join as: identity `agent-<job id>` in
 * agents-js) right after the answer and, while it is absent, again for up to AGENT_JOIN_GRACE_MS; if none joined, it
 * hangs up (deletes the room) and ends the attempt with one outcome, retried like any failed attempt.
 */
import { ParticipantInfo_Kind } from '@livekit/protocol';
import type { RoomServiceClient } from 'livekit-server-sdk';
import type { CallStore } from '../core/callStore.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/time.js';
import type { DialAttemptResult } from './dialAttempt.js';

/** How often the room is looked at again while no agent is there. */
export const AGENT_PRESENCE_POLL_MS = 250;
/** The reason an answered attempt without an agent ends with (retried as `failed`). */
export const NO_AGENT_REASON = 'no agent joined the room';

/** What the room showed within the grace. */
export type AgentPresence =
  | { kind: 'present'; identity: string; waitedMs: number }
  | { kind: 'absent'; waitedMs: number }
  /** LiveKit could not be asked at all: nothing is known, so nothing is hung up. */
  | { kind: 'unknown'; reason: string; waitedMs: number };

/** The agent's participant in `room`, if any (kind AGENT). */
async function findAgent(rooms: Pick<RoomServiceClient, 'listParticipants'>, room: string): Promise<string | undefined> {
  const participants = await rooms.listParticipants(room);
  return participants.find((p) => p.kind === ParticipantInfo_Kind.AGENT)?.identity;
}

/**
 * Looks for an agent participant in `room` at once and, while there is none, every AGENT_PRESENCE_POLL_MS until
 * `graceMs` has passed on `clock`. `absent` needs at least one answer from LiveKit; when every look failed the answer
 * is `unknown`.
 */
export async function waitForAgentInRoom(
  rooms: Pick<RoomServiceClient, 'listParticipants'>,
  room: string,
  options: { graceMs: number; clock: Clock; pollMs?: number },
): Promise<AgentPresence> {
  const { clock, graceMs } = options;
  const pollMs = options.pollMs ?? AGENT_PRESENCE_POLL_MS;
  const started = clock.now();
  let answered = false;
  let lastError = '';
  for (;;) {
    try {
      const identity = await findAgent(rooms, room);
      if (identity !== undefined) return { kind: 'present', identity, waitedMs: clock.now() - started };
      answered = true;
    } catch (err) {
      lastError = errorMessage(err);
    }
    const left = started + graceMs - clock.now();
    if (left <= 0) break;
    await clock.sleep(Math.min(pollMs, left));
  }
  const waitedMs = clock.now() - started;
  return answered ? { kind: 'absent', waitedMs } : { kind: 'unknown', reason: lastError, waitedMs };
}

export interface AgentCheckDeps {
  rooms: Pick<RoomServiceClient, 'listParticipants' | 'deleteRoom'>;
  store: Pick<CallStore, 'holdsLock'>;
  graceMs: number;
  clock: Clock;
  /** Counted once per call hung up for want of an agent. */
  onNoAgent?: () => void;
}

/**
 * The attempt's result once its agent has been looked for. An answer with an agent in the room, a recovered
 * attempt (a previous consumer's call, whose agent may have come and gone already), or a room LiveKit cannot be
 * asked about stay `answered`. With no agent after the grace: the room is deleted (which hangs up on the callee and
 * removes the dispatch), and the attempt ends `failed` with NO_AGENT_REASON, for the retry policy to take on; unless
 * this consumer no longer holds the job (`lock`): then it touches nothing and the call stays `answered`.
 */
export async function requireAgentAfterAnswer(
  result: DialAttemptResult,
  lock: { key: string; token: string },
  deps: AgentCheckDeps,
  log: Logger,
): Promise<DialAttemptResult> {
  if (result.status !== 'answered' || result.recovered) return result;
  const presence = await waitForAgentInRoom(deps.rooms, result.room, { graceMs: deps.graceMs, clock: deps.clock });
  if (presence.kind === 'present') return result;
  if (presence.kind === 'unknown') {
    log.warn({ room: result.room, reason: presence.reason }, 'could not ask LiveKit whether the agent joined the answered call; leaving it to the agent');
    return result;
  }
  if (!(await deps.store.holdsLock(lock))) {
    // another consumer may hold the job now: it does not touch a room it does not own (the watchdog ends the call)
    log.warn({ room: result.room }, 'no agent joined the answered call, but this consumer no longer holds its job; leaving the room alone');
    return result;
  }
  deps.onNoAgent?.();
  log.warn({ room: result.room, graceMs: deps.graceMs, waitedMs: presence.waitedMs }, 'no agent joined the answered call; hanging up and ending the attempt');
  try {
    await deps.rooms.deleteRoom(result.room);
  } catch (err) {
    // the callee then hears silence until LiveKit closes the room; the outcome below still ends the call once
    log.error({ err: errorMessage(err), room: result.room }, 'could not delete the room of an answered call without an agent');
  }
  return { status: 'failed', room: result.room, end: { kind: 'retry', outcome: 'failed', reason: NO_AGENT_REASON } };
}
