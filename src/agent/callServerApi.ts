import { ServerError, type RoomServiceClient, type SipClient } from 'livekit-server-sdk';
import { classifySipError, describeLiveKitError, sipStatusOfError, type DialFailure } from '../core/classifySipError.js';
import { SIP_ATTR } from '../core/sipAttributes.js';
import type { Logger } from '../core/logger.js';
import { redactPhoneNumber } from '../core/phone.js';
import { SECOND, systemClock, type Clock } from '../core/time.js';
import { redactNumbersIn } from './callPlan.js';
import type { OutcomeDecision } from './outcomeTracker.js';


const DEFAULT_POLL_INTERVAL_MS = 250;
/** Extra request time beyond the ringing timeout for calls that wait for an answer. */
const ANSWER_REQUEST_GRACE_S = 10;

/** The LiveKit API clients the call needs (created with region failover off, see src/core/livekitClients.ts). */
export interface CallServerApiClients {
  sip: Pick<SipClient, 'createSipParticipant' | 'transferSipParticipant'>;
  rooms: Pick<RoomServiceClient, 'deleteRoom' | 'getParticipant' | 'moveParticipant' | 'removeParticipant'>;
}

export type DialResult =
  | { ok: true; elapsedMs: number }
  | { ok: false; elapsedMs: number; failure: DialFailure; decision: OutcomeDecision };

export type TransferResult =
  | { ok: true; target: string }
  | { ok: false; target: string; reason: string; sipStatusCode?: number; sipStatus?: string };

export type ParticipantState =
  | { present: false }
  | { present: true; callStatus: string | undefined; attributes: Record<string, string> };

export interface DialOptions {
  trunkId: string;
  participantIdentity: string;
  ringingTimeoutS: number;
  participantName?: string;
  maxCallDurationS?: number;
  /** DTMF to send once answered ('w' = 0.5 s pause), e.g. an extension. */
  dtmf?: string;
}

export interface TransferOptions {
  /** The SIP participant must be gone (or in `hangup`) within this time for the transfer to count. */
  confirmTimeoutMs: number;
  ringingTimeoutS: number;
  playDialtone?: boolean;
  signal?: AbortSignal;
}

export interface CallServerApiOptions {
  clients: CallServerApiClients;
  roomName: string;
  logger: Logger;
  clock?: Clock;
  pollIntervalMs?: number;
  /** Room names and identities carry the caller's number (inbound calls): logs show them with the digits redacted. */
  redactNames?: boolean;
}

function isNotFound(err: unknown): boolean {
  return err instanceof ServerError && (err.status === 404 || err.code === 'not_found');
}


/** The decision a failed agent-placed dial ends the call with (no retry: the agent dials once). */
export function dialFailureDecision(failure: DialFailure): OutcomeDecision {
  if (failure.kind === 'platform') return { outcome: 'failed', reason: `could not place the call: ${failure.reason}` };
  const status = `SIP ${failure.sipStatusCode ?? '?'}${failure.sipStatus ? ` ${failure.sipStatus}` : ''}`;
  return {
    outcome: failure.outcome,
    reason: failure.kind === 'final' && failure.trunkConfigurationError ? `trunk configuration error (${status})` : status,
    sipStatusCode: failure.sipStatusCode,
    sipStatus: failure.sipStatus,
  };
}

/**
 * The LiveKit server API side of one call: hanging up (deleting the room), placing the call when the agent
 * dials, cold transfers with confirmation, and the room moves a warm transfer needs. No audio, no model:
 * the same object drives a real LiveKit project and the simulator.
 */
export class CallServerApi {
  readonly roomName: string;
  private readonly clients: CallServerApiClients;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  private readonly redactNames: boolean;
  private hangingUp: Promise<void> | undefined;

  constructor(options: CallServerApiOptions) {
    this.clients = options.clients;
    this.roomName = options.roomName;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.redactNames = options.redactNames ?? false;
  }

  /** A room name or participant identity as logs show it. */
  private forLog(name: string): string {
    return this.redactNames ? redactNumbersIn(name) : name;
  }

  get hungUp(): boolean {
    return this.hangingUp !== undefined;
  }

  /** Hangs up by deleting the room, which disconnects every participant (the callee does not sit in silence). Once. */
  hangup(reason: string): Promise<void> {
    this.hangingUp ??= this.deleteRoom(this.roomName).then(() => {
      this.logger.info({ room: this.forLog(this.roomName), reason }, 'hung up (room deleted)');
    });
    return this.hangingUp;
  }

  /** Deletes a room; a room that is already gone is fine, anything else is logged (hanging up must not throw). */
  async deleteRoom(room: string): Promise<void> {
    try {
      await this.clients.rooms.deleteRoom(room);
    } catch (err) {
      if (!isNotFound(err)) this.logger.warn({ err: describeLiveKitError(err), room: this.forLog(room) }, 'could not delete room');
    }
  }

  /** Places a call into this room and waits for the answer; a failure is classified by its SIP status code. */
  dial(phoneNumber: string, options: DialOptions): Promise<DialResult> {
    return this.dialInto(this.roomName, phoneNumber, options);
  }

  /** Places a call into `room` (the consultation room of a warm transfer, or this call's room). */
  async dialInto(room: string, phoneNumber: string, options: DialOptions): Promise<DialResult> {
    const startedAt = this.clock.now();
    const log = this.logger.child({ room: this.forLog(room), to: redactPhoneNumber(phoneNumber) });
    try {
      await this.clients.sip.createSipParticipant(options.trunkId, phoneNumber, room, {
        participantIdentity: options.participantIdentity,
        participantName: options.participantName,
        waitUntilAnswered: true,
        ringingTimeout: options.ringingTimeoutS,
        maxCallDuration: options.maxCallDurationS,
        dtmf: options.dtmf,
        timeout: options.ringingTimeoutS + ANSWER_REQUEST_GRACE_S,
      });
      const elapsedMs = this.clock.now() - startedAt;
      log.info({ elapsedMs }, 'call answered');
      return { ok: true, elapsedMs };
    } catch (err) {
      const elapsedMs = this.clock.now() - startedAt;
      const failure = classifySipError(err, { elapsedMs, ringingTimeoutMs: options.ringingTimeoutS * SECOND });
      log.info({ failure, elapsedMs }, 'call not answered');
      return { ok: false, elapsedMs, failure, decision: dialFailureDecision(failure) };
    }
  }

  /** The SIP participant's presence and `sip.callStatus` in `room` (this call's room by default). */
  async participantState(identity: string, room = this.roomName): Promise<ParticipantState> {
    let info: Awaited<ReturnType<RoomServiceClient['getParticipant']>>;
    try {
      info = await this.clients.rooms.getParticipant(room, identity);
    } catch (err) {
      if (isNotFound(err)) return { present: false };
      throw err;
    }
    const attributes = { ...info.attributes };
    return { present: true, callStatus: attributes[SIP_ATTR.callStatus], attributes };
  }

  /**
   * Cold transfer (SIP REFER) of the callee to `target` (`tel:+…` or `sip:user@host`). The Node SDK's request
   * can resolve before the transfer's result is known, so success means the SIP participant then left the room
   * (or reached `hangup`) within `confirmTimeoutMs`; otherwise the transfer failed and the callee is still here.
   */
  async transferCold(identity: string, target: string, options: TransferOptions): Promise<TransferResult> {
    const log = this.logger.child({ room: this.forLog(this.roomName), identity: this.forLog(identity) });
    try {
      await this.clients.sip.transferSipParticipant(this.roomName, identity, target, {
        playDialtone: options.playDialtone ?? false,
        ringingTimeout: options.ringingTimeoutS,
        timeout: options.ringingTimeoutS + ANSWER_REQUEST_GRACE_S,
      });
    } catch (err) {
      const sip = sipStatusOfError(err);
      log.warn({ err: describeLiveKitError(err), sip }, 'transfer request failed');
      return sip
        ? { ok: false, target, reason: `SIP ${sip.code}${sip.status ? ` ${sip.status}` : ''}`, sipStatusCode: sip.code, sipStatus: sip.status }
        : { ok: false, target, reason: describeLiveKitError(err) };
    }

    const deadline = this.clock.now() + options.confirmTimeoutMs;
    let last: ParticipantState = { present: false };
    for (;;) {
      try {
        last = await this.participantState(identity);
      } catch (err) {
        log.warn({ err: describeLiveKitError(err) }, 'could not check the transferred participant');
      }
      if (!last.present || last.callStatus === 'hangup') {
        log.info('transfer confirmed: the SIP participant left the room');
        return { ok: true, target };
      }
      if (this.clock.now() >= deadline || options.signal?.aborted) break;
      await this.clock.sleep(this.pollIntervalMs, options.signal).catch(() => undefined);
    }
    const status = last.present ? transferFailureStatus(last.attributes) : undefined;
    log.warn({ status }, 'transfer not confirmed: the SIP participant is still in the room');
    return {
      ok: false,
      target,
      reason: status?.code
        ? `SIP ${status.code}${status.text ? ` ${status.text}` : ''}`
        : `not confirmed within ${Math.round(options.confirmTimeoutMs / SECOND)} s (the callee is still on the line)`,
      sipStatusCode: status?.code,
      sipStatus: status?.text,
    };
  }

  /** Moves a participant between rooms (the warm-transfer merge). */
  async moveParticipant(fromRoom: string, identity: string, toRoom: string): Promise<void> {
    await this.clients.rooms.moveParticipant(fromRoom, identity, toRoom);
  }
}

/**
 * Attributes some SIP setups put on a participant whose transfer failed after the request returned
 * (`sip.transferStatusCode`/`sip.transferStatus`, or `lk.sip.*`); undefined when there is none.
 */
function transferFailureStatus(attributes: Record<string, string>): { code: number; text: string | undefined } | undefined {
  const rawCode = attributes['sip.transferStatusCode'] ?? attributes['lk.sip.transferStatusCode'];
  const code = Number(rawCode);
  if (!rawCode || !Number.isInteger(code) || code < 300) return undefined;
  return { code, text: attributes['sip.transferStatus'] ?? attributes['lk.sip.transferStatus'] };
}
