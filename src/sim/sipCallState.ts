/**
 * The simulator's SIP calls as records and their shared life: the calls in progress (by call id and by participant),
 * their `sip.callStatus`, and how a call that never connected fails or an answered one ends (its participant leaves,
 * a pending transfer ends with it). The outbound, inbound and transfer flows (outboundCalls.ts, inboundCalls.ts,
 * sipTransfers.ts) run on it, as livekit/sip's do (pkg/sip/outbound.go, inbound.go, pkg/sip/client.go).
 */
import { SIPParticipantInfo, SIPTransferReason, SIPTransferStatus, TransferSIPParticipantResponse } from '@livekit/protocol';
import type { Duration } from '@bufbuild/protobuf';
import type { Clock } from '../core/time.js';
import { SIP_ATTR, type SipCallStatus } from '../core/sipAttributes.js';
import type { CallEndReason, CallEventBase, SimEvents } from './events.js';
import type { PhoneNetwork } from './phoneNetwork.js';
import type { RoomState, SimParticipant } from './roomState.js';
import type { Behavior, Callee } from './scenarioSchema.js';
import type { Scheduler, TimerGroup } from './scheduler.js';
import type { SipTrunks } from './sipTrunks.js';
import { type DisconnectReasonName, LIVEKIT_MESSAGES, type TwirpCode, type TwirpError, psrpcError, sipFailureError } from './twirpErrors.js';

const MS_PER_SECOND = 1000;
const NS_PER_MS = 1_000_000;

export interface SimCallOptions {
  waitUntilAnswered: boolean;
  /** From the request; undefined when it carried none (LiveKit then rings up to 3 minutes). */
  ringingTimeoutMs: number | undefined;
  maxCallDurationMs: number | undefined;
  dtmf: string;
  playDialtone: boolean;
  hidePhoneNumber: boolean;
  krispEnabled: boolean;
  participantName: string;
  participantMetadata: string;
  participantAttributes: Record<string, string>;
  headers: Record<string, string>;
}

/**
 * `refused`: the request failed before reaching the phone network (validation, unknown trunk);
 * `pending`: still dialing/ringing; `answered`: the callee picked up; `failed`: the call never connected.
 */
export type SimCallResult = 'refused' | 'pending' | 'answered' | 'failed';

/** One call as the sim saw it and what became of it: a CreateSIPParticipant request, or an inbound call. */
export interface SimCallRecord {
  callId: string;
  direction: 'outbound' | 'inbound';
  /** The far end's number: the one dialed, or the inbound caller's. */
  phoneNumber: string;
  trunkId: string;
  /** Our number: the caller id shown, or the number an inbound call dialed. */
  fromNumber: string;
  room: string;
  identity: string;
  participantId: string | undefined;
  /** Per-number attempt count; undefined for refused requests. */
  attempt: number | undefined;
  behavior: Behavior | undefined;
  receivedAt: number;
  options: SimCallOptions;
  result: SimCallResult;
  status: SipCallStatus | undefined;
  ringingAt: number | undefined;
  answeredAt: number | undefined;
  endedAt: number | undefined;
  endReason: string | undefined;
  callee: Callee | undefined;
  sipStatusCode: number | undefined;
  sipStatus: string | undefined;
  twirpCode: TwirpCode | undefined;
  httpStatus: number | undefined;
  errorMessage: string | undefined;
  /** The HTTP client went away before the reply (the call carried on regardless). */
  clientDisconnected: boolean;
}

export type SimTransferOutcome = 'pending' | 'completed' | 'failed' | 'silently_failed' | 'call_ended';

export interface SimTransferRecord {
  transferId: string;
  callId: string;
  room: string;
  identity: string;
  transferTo: string;
  requestedAt: number;
  ringingTimeoutMs: number;
  outcome: SimTransferOutcome;
  respondedAt: number | undefined;
  sipStatusCode: number | undefined;
  sipStatus: string | undefined;
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: TwirpError): void;
  settled: boolean;
}

export function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: TwirpError) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve(value) {
      if (d.settled) return;
      d.settled = true;
      resolve(value);
    },
    reject(error) {
      if (d.settled) return;
      d.settled = true;
      reject(error);
    },
  };
  return d;
}

export interface PendingTransfer {
  record: SimTransferRecord;
  reply: Deferred<TransferSIPParticipantResponse>;
  timers: TimerGroup;
}

export interface ActiveCall {
  record: SimCallRecord;
  /** Where the SIP participant is now (MoveParticipant can change it). */
  room: string;
  timers: TimerGroup;
  reply: Deferred<SIPParticipantInfo> | undefined;
  info: SIPParticipantInfo;
  transfer: PendingTransfer | undefined;
  /** Set while the call itself removes its participant, so the leave hook ignores it. */
  leaving: boolean;
}

export function durationMs(duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  const ms = Number(duration.seconds) * MS_PER_SECOND + duration.nanos / NS_PER_MS;
  return ms > 0 ? ms : undefined;
}

export function participantKey(room: string, identity: string): string {
  return `${room}\u0000${identity}`;
}

export interface SipCallsDeps {
  clock: Clock;
  events: SimEvents;
  rooms: RoomState;
  network: PhoneNetwork;
  trunks: SipTrunks;
  scheduler: Scheduler;
}

/** A new call record's end and error fields. */
export const NOT_ENDED = {
  endedAt: undefined,
  endReason: undefined,
  sipStatusCode: undefined,
  sipStatus: undefined,
  twirpCode: undefined,
  httpStatus: undefined,
  errorMessage: undefined,
  clientDisconnected: false,
} as const satisfies Partial<SimCallRecord>;

/** The calls in progress and every call the simulator saw. */
export class SipCallRegistry {
  readonly calls: SimCallRecord[] = [];
  readonly inboundCalls: SimCallRecord[] = [];
  readonly transfers: SimTransferRecord[] = [];
  readonly active = new Map<string, ActiveCall>();
  readonly byParticipant = new Map<string, string>();

  constructor(readonly deps: SipCallsDeps) {
    deps.rooms.onLeave((room, participant, reason, movedTo) => this.onParticipantLeft(room, participant, reason, movedTo));
  }

  /** A call in progress, findable by id and by its participant. */
  register(call: ActiveCall): void {
    this.active.set(call.record.callId, call);
    this.byParticipant.set(participantKey(call.room, call.record.identity), call.record.callId);
  }

  /** Makes the callee of the SIP participant hang up: an answered call ends, a ringing one is declined (603). */
  hangupCallee(room: string, identity: string): boolean {
    const call = this.findCall(room, identity);
    if (!call) return false;
    if (call.record.result === 'answered') {
      this.endCall(call, 'callee_hangup', 'CLIENT_INITIATED');
    } else {
      const decline = 603;
      this.failCall(call, sipFailureError(decline, 'Decline'), 'USER_REJECTED', 'callee_declined');
    }
    return true;
  }

  /** Ends every call (answered ones end, pending requests get "service shutting down"). */
  closeAll(): void {
    for (const call of [...this.active.values()]) {
      if (call.record.result === 'answered') this.endCall(call, 'sim_closed', 'SERVER_SHUTDOWN');
      else this.failCall(call, psrpcError('canceled', LIVEKIT_MESSAGES.serviceShuttingDown), 'SERVER_SHUTDOWN', 'sim_closed');
    }
  }

  now(): number {
    return this.deps.clock.now();
  }

  findCall(room: string, identity: string): ActiveCall | undefined {
    const callId = this.byParticipant.get(participantKey(room, identity));
    return callId === undefined ? undefined : this.active.get(callId);
  }

  base(call: ActiveCall): CallEventBase {
    const r = call.record;
    return {
      callId: r.callId,
      room: call.room,
      identity: r.identity,
      phoneNumber: r.phoneNumber,
      trunkId: r.trunkId,
      attempt: r.attempt ?? 0,
      at: this.now(),
    };
  }

  setStatus(call: ActiveCall, status: SipCallStatus): void {
    call.record.status = status;
    const participant = this.deps.rooms.getParticipant(call.room, call.record.identity);
    if (participant) participant.attributes[SIP_ATTR.callStatus] = status;
  }

  failureFields(error: TwirpError, reason: string) {
    return {
      sipStatusCode: error.sipStatusCode,
      sipStatus: error.sipStatus,
      twirpCode: error.code,
      httpStatus: error.httpStatus,
      message: error.message,
      reason,
    };
  }

  recordFailure(record: SimCallRecord, error: TwirpError, reason: string): void {
    record.result = 'failed';
    record.endedAt = this.now();
    record.endReason = reason;
    record.sipStatusCode = error.sipStatusCode;
    record.sipStatus = error.sipStatus;
    record.twirpCode = error.code;
    record.httpStatus = error.httpStatus;
    record.errorMessage = error.message;
  }

  /** The call never connected: its participant leaves, a waiting request gets `error`. */
  failCall(call: ActiveCall, error: TwirpError, disconnectReason: DisconnectReasonName, reason: string): void {
    if (call.record.result !== 'pending') return;
    this.recordFailure(call.record, error, reason);
    this.finish(call, disconnectReason);
    call.reply?.reject(error);
    this.deps.events.emit('call_failed', { ...this.base(call), ...this.failureFields(error, reason) });
  }

  /** An answered call ends: the callee hears the hang-up (or hangs up), the participant leaves. */
  endCall(call: ActiveCall, reason: CallEndReason, disconnectReason: DisconnectReasonName): void {
    if (call.record.result !== 'answered' || call.record.endedAt !== undefined) return;
    const record = call.record;
    record.endedAt = this.now();
    record.endReason = reason;
    this.setStatus(call, 'hangup');
    this.finish(call, disconnectReason);
    call.reply?.resolve(call.info); // still in automation (DTMF): LiveKit answers once the call is up
    this.deps.events.emit('call_ended', {
      ...this.base(call),
      reason,
      durationMs: record.endedAt - (record.answeredAt ?? record.endedAt),
    });
  }

  /** Common teardown: stop timers, end a pending transfer, remove the participant if it is still there. */
  private finish(call: ActiveCall, disconnectReason: DisconnectReasonName): void {
    call.timers.cancel();
    this.active.delete(call.record.callId);
    this.byParticipant.delete(participantKey(call.room, call.record.identity));
    if (call.transfer) endPendingTransfer(call.transfer, this);
    call.leaving = true;
    this.deps.rooms.removeParticipant(call.room, call.record.identity, disconnectReason);
  }

  private onParticipantLeft(room: string, participant: SimParticipant, reason: DisconnectReasonName, movedTo?: string): void {
    const call = this.findCall(room, participant.identity);
    if (!call || call.leaving || call.record.participantId !== participant.sid) return;
    if (movedTo !== undefined) {
      this.byParticipant.delete(participantKey(room, participant.identity));
      call.room = movedTo;
      this.byParticipant.set(participantKey(movedTo, participant.identity), call.record.callId);
      return;
    }
    call.leaving = true; // the participant is already gone
    const endReason: CallEndReason = reason === 'ROOM_DELETED' ? 'room_deleted' : 'participant_removed';
    if (call.record.result === 'answered') {
      this.endCall(call, endReason, reason);
    } else {
      // The room connection closed under a dialing call: livekit/sip cancels the INVITE ("sip request timed out").
      this.failCall(call, psrpcError('canceled', LIVEKIT_MESSAGES.sipRequestTimedOut), reason, endReason);
    }
  }
}

/** The call ended while a REFER was pending: livekit/sip reports the transfer as over, without error. */
export function endPendingTransfer(pending: PendingTransfer, registry: SipCallRegistry): void {
  pending.timers.cancel();
  const record = pending.record;
  if (record.outcome !== 'pending') return;
  record.outcome = 'call_ended';
  if (!pending.reply.settled) {
    record.respondedAt = registry.now();
    pending.reply.resolve(
      new TransferSIPParticipantResponse({
        transferId: record.transferId,
        status: SIPTransferStatus.STS_TRANSFER_FAILED,
        reason: SIPTransferReason.STR_CALL_ENDED,
      }),
    );
  }
  registry.deps.events.emit('transfer_failed', {
    transferId: record.transferId,
    room: record.room,
    identity: record.identity,
    transferTo: record.transferTo,
    callId: record.callId,
    at: registry.now(),
    sipStatusCode: undefined,
    sipStatus: undefined,
    silent: false,
    reason: 'call_ended',
  });
}
