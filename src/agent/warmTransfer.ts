import { voice, workflows } from '@livekit/agents';
import type { Logger } from '../core/logger.js';
import { SECOND } from '../core/time.js';
import type { CallServerApi } from './callServerApi.js';
import { errorMessage } from '../core/errors.js';

/** Identity of the operator's SIP participant (the one `workflows.WarmTransferTask` uses too). */
export const OPERATOR_IDENTITY = 'human-agent-sip';

export interface WarmTransferRequest {
  /** `tel:+…` or `sip:user@host` of the operator. */
  target: string;
  destinationName: string;
  session: voice.AgentSession;
  /** A short account of the call so far, for the operator's briefing. */
  briefing: string;
  /**
   * Aborted at the transfer's deadline (AGENT_WARM_TRANSFER_TIMEOUT_S): the port stops waiting, takes the caller off
   * hold, hangs up the operator's leg and answers `{ok: false}`.
   */
  signal?: AbortSignal;
}

/** `timedOut`: the transfer was given up at its deadline (the caller is off hold, the operator's leg hung up). */
export type WarmTransferOutcome = { ok: true; operatorIdentity: string } | { ok: false; reason: string; timedOut?: boolean };

/** The reason a warm transfer's deadline aborts it with. */
export class WarmTransferTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the transfer did not go through within ${timeoutMs / SECOND} s`);
    this.name = 'WarmTransferTimeoutError';
  }
}

/** The outcome of a transfer its deadline stopped. */
function timedOut(signal: AbortSignal): WarmTransferOutcome {
  const reason: unknown = signal.reason;
  return { ok: false, reason: reason instanceof Error ? reason.message : 'the transfer was given up', timedOut: true };
}

/** Resolves with `work`'s value, or with undefined once `signal` aborts (work goes on, unwatched). */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (!signal) return work;
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Puts the caller on hold, dials and briefs an operator, then joins them with the caller. */
export interface WarmTransferPort {
  transfer(request: WarmTransferRequest): Promise<WarmTransferOutcome>;
}

/** What to dial for a target through an outbound trunk: the number of `tel:`, the user part of `sip:`. */
export function dialString(target: string): string {
  if (target.startsWith('tel:')) return target.slice('tel:'.length);
  const sip = /^sips?:([^@]+)@/.exec(target);
  return sip?.[1] ?? target;
}

/** Consultation room name, as WarmTransferTask names it. */
export function consultRoomName(callerRoom: string): string {
  return `${callerRoom}-human-agent`;
}

const BRIEFING_EXTRA = `Introduce the call from your perspective as the AI assistant who took part in it: who the caller is,
why they called, and why they need a person. Keep the summary under 200 characters, then answer the operator's
questions. When the operator agrees to take the call, call connect_to_caller; if they cannot, call decline_transfer.`;

/**
 * Warm transfer in a LiveKit room with agents-js `workflows.WarmTransferTask`: hold music for the caller, the
 * operator dialed into `<room>-human-agent`, briefed by a second session with the call's history, then moved into
 * the caller's room. A ToolError from the task (no answer, declined, voicemail, caller hung up) is a failure. The
 * request's `signal` is the task's `abortSignal` (its "consult deadline"): on abort the task stops the hold audio,
 * gives the caller back their audio, shuts the consultation session down (which deletes its room, hanging up the
 * operator) or abandons a dial still ringing (deleting that room too), and fails with the signal's reason.
 */
export function agentsWarmTransfer(options: { sipTrunkId: string; ringingTimeoutS: number; logger: Logger }): WarmTransferPort {
  return {
    async transfer(request) {
      try {
        const result = await new workflows.WarmTransferTask({
          sipCallTo: dialString(request.target),
          sipTrunkId: options.sipTrunkId,
          chatCtx: request.session.history,
          ringingTimeout: options.ringingTimeoutS * SECOND,
          instructions: { extra: `${BRIEFING_EXTRA}\n\nWhat the assistant noted about the call: ${request.briefing}` },
          abortSignal: request.signal,
        }).run();
        return { ok: true, operatorIdentity: result.humanAgentIdentity };
      } catch (err) {
        if (request.signal?.aborted) return timedOut(request.signal);
        const reason = errorMessage(err);
        options.logger.warn({ reason }, 'warm transfer failed');
        return { ok: false, reason };
      }
    },
  };
}

/**
 * Warm transfer through the server API only (no media): dial the operator into the consultation room and wait
 * for the answer, brief them (the briefing is kept in the transcript, since nothing can be spoken here), then
 * move them into the caller's room. Used by the simulated agent; a real deployment uses agentsWarmTransfer.
 */
export function apiWarmTransfer(options: {
  serverApi: CallServerApi;
  sipTrunkId: string;
  ringingTimeoutS: number;
  logger: Logger;
  onBriefing?: (briefing: string) => void;
}): WarmTransferPort {
  return {
    async transfer(request) {
      const { serverApi } = options;
      const { signal } = request;
      const consultRoom = consultRoomName(serverApi.roomName);
      const dialed = await unlessAborted(
        serverApi.dialInto(consultRoom, dialString(request.target), {
          trunkId: options.sipTrunkId,
          participantIdentity: OPERATOR_IDENTITY,
          participantName: 'Operator',
          ringingTimeoutS: options.ringingTimeoutS,
        }),
        signal,
      );
      if (!dialed || signal?.aborted) {
        // the deadline: deleting the consultation room hangs up the operator's leg, ringing or answered
        await serverApi.deleteRoom(consultRoom);
        return signal ? timedOut(signal) : { ok: false, reason: 'the transfer was given up' };
      }
      if (!dialed.ok) {
        await serverApi.deleteRoom(consultRoom);
        return { ok: false, reason: `the operator did not take the call (${dialed.decision.reason})` };
      }
      options.onBriefing?.(request.briefing);
      try {
        await serverApi.moveParticipant(consultRoom, OPERATOR_IDENTITY, serverApi.roomName);
      } catch (err) {
        options.logger.warn({ err: errorMessage(err) }, 'could not move the operator into the caller room');
        await serverApi.deleteRoom(consultRoom);
        return { ok: false, reason: 'could not connect the operator with the caller' };
      }
      await serverApi.deleteRoom(consultRoom);
      return { ok: true, operatorIdentity: OPERATOR_IDENTITY };
    },
  };
}
