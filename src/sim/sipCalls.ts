/**
 * Outbound calls and transfers: CreateSIPParticipant and TransferSIPParticipant as livekit-server + livekit/sip
 * behave (pkg/service/sip.go, pkg/sip/client.go, pkg/sip/outbound.go), driven by the scripted phone network.
 */
import {
  CreateSIPParticipantRequest,
  SIPParticipantInfo,
  SIPTransferReason,
  SIPTransferStatus,
  TransferSIPParticipantRequest,
  TransferSIPParticipantResponse,
} from '@livekit/protocol';
import type { Duration } from '@bufbuild/protobuf';
import type { Clock } from '../core/time.js';
import { SIP_ATTR, type SipCallStatus } from '../core/sipAttributes.js';
import { ensureAdminPermission, ensureSipCallPermission } from './auth.js';
import type { CallEndReason, CallEventBase, SimEvents } from './events.js';
import { ID_PREFIX, newId } from './ids.js';
import { routeInboundCall, type InboundCallRequest } from './inboundDispatch.js';
import {
  type NetworkCallPlan,
  LIVEKIT_DEFAULT_RINGING_TIMEOUT_MS,
  LIVEKIT_TRANSFER_DEADLINE_MS,
  type PhoneNetwork,
  planCall,
  planTransfer,
  resolveCallee,
} from './phoneNetwork.js';
import type { RoomState, SimParticipant } from './roomState.js';
import { type Behavior, type Callee, TRANSFER_TARGET_PATTERN } from './scenarioSchema.js';
import type { Scheduler, TimerGroup } from './scheduler.js';
import type { SipTrunks } from './sipTrunks.js';
import {
  type DisconnectReasonName,
  LIVEKIT_MESSAGES,
  type TwirpCode,
  type TwirpError,
  psrpcError,
  sipFailureError,
  twirpError,
} from './twirpErrors.js';
import { rpc, type TwirpCallContext, type TwirpMethod } from './twirpServer.js';

export { SIP_ATTR, type SipCallStatus };

/** Sending initial DTMF: each digit takes this long, a `w` pauses half a second (LiveKit's convention). */
const DTMF_DIGIT_MS = 250;
const DTMF_PAUSE_MS = 500;
const DTMF_PAUSE_CHAR = 'w';
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

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: TwirpError): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
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

interface PendingTransfer {
  record: SimTransferRecord;
  reply: Deferred<TransferSIPParticipantResponse>;
  timers: TimerGroup;
}

interface ActiveCall {
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

function durationMs(duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  const ms = Number(duration.seconds) * MS_PER_SECOND + duration.nanos / NS_PER_MS;
  return ms > 0 ? ms : undefined;
}

function dtmfDurationMs(dtmf: string): number {
  let total = 0;
  for (const char of dtmf) total += char === DTMF_PAUSE_CHAR ? DTMF_PAUSE_MS : DTMF_DIGIT_MS;
  return total;
}

function participantKey(room: string, identity: string): string {
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

/** An inbound call to place: who calls which number, and how the caller behaves once connected. */
export interface InboundCallOptions extends InboundCallRequest {
  /** What the caller says and does (a text-mode harness plays it); default a person saying hello. */
  caller?: Callee;
  /** The caller hangs up this long after being connected. */
  hangupAfterMs?: number;
}

export type InboundCallResult =
  | { ok: true; callId: string; room: string; identity: string; trunkId: string; ruleId: string }
  | { ok: false; reason: 'no_trunk' | 'no_rule' | 'unsupported_rule' };

/** A new call record's end and error fields. */
const NOT_ENDED = {
  endedAt: undefined,
  endReason: undefined,
  sipStatusCode: undefined,
  sipStatus: undefined,
  twirpCode: undefined,
  httpStatus: undefined,
  errorMessage: undefined,
  clientDisconnected: false,
} as const satisfies Partial<SimCallRecord>;

/** An inbound call's SIP options: none of CreateSIPParticipant's apply. */
const INBOUND_CALL_OPTIONS: SimCallOptions = {
  waitUntilAnswered: false,
  ringingTimeoutMs: undefined,
  maxCallDurationMs: undefined,
  dtmf: '',
  playDialtone: false,
  hidePhoneNumber: false,
  krispEnabled: false,
  participantName: '',
  participantMetadata: '',
  participantAttributes: {},
  headers: {},
};

export class SipCalls {
  readonly calls: SimCallRecord[] = [];
  readonly inboundCalls: SimCallRecord[] = [];
  readonly transfers: SimTransferRecord[] = [];
  private readonly active = new Map<string, ActiveCall>();
  private readonly byParticipant = new Map<string, string>();

  constructor(private readonly deps: SipCallsDeps) {
    deps.rooms.onLeave((room, participant, reason, movedTo) => this.onParticipantLeft(room, participant, reason, movedTo));
  }

  methods(): Record<string, TwirpMethod> {
    return {
      CreateSIPParticipant: rpc(CreateSIPParticipantRequest, (req, ctx) => this.createParticipant(req, ctx)),
      TransferSIPParticipant: rpc(TransferSIPParticipantRequest, (req, ctx) => this.transfer(req, ctx)),
    };
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

  /**
   * An inbound call as LiveKit's SIP service takes it: routed by the inbound trunks and dispatch rules, the room
   * created with the rule's room configuration (which dispatches its agents), the caller's SIP participant joined
   * and active. The caller then behaves as `caller` says; `hangupCallee` hangs them up.
   */
  placeInbound(options: InboundCallOptions): InboundCallResult {
    const callId = newId(ID_PREFIX.sipCall);
    const trunks = this.deps.trunks;
    const routing = routeInboundCall([...trunks.inbound.values()], [...trunks.dispatchRules.values()], options, callId);
    if (!routing.ok) return routing;
    const { room, roomConfig } = routing;
    if (!this.deps.rooms.has(room)) {
      this.deps.rooms.ensureRoom(room, {
        metadata: roomConfig?.metadata ?? '',
        emptyTimeout: roomConfig?.emptyTimeout,
        departureTimeout: roomConfig?.departureTimeout,
        maxParticipants: roomConfig?.maxParticipants,
      });
      for (const agent of roomConfig?.agents ?? []) this.deps.rooms.addDispatch(room, agent.agentName, agent.metadata);
    }
    const now = this.now();
    const callee = resolveCallee(options.caller);
    const trunk = trunks.inbound.get(routing.trunkId);
    const record: SimCallRecord = {
      callId,
      direction: 'inbound',
      phoneNumber: options.from,
      trunkId: routing.trunkId,
      fromNumber: options.to,
      room,
      identity: routing.identity,
      participantId: undefined,
      attempt: undefined,
      behavior: undefined,
      receivedAt: now,
      options: {
        ...INBOUND_CALL_OPTIONS,
        maxCallDurationMs: durationMs(trunk?.maxCallDuration),
        participantName: routing.name,
        participantMetadata: routing.metadata,
        participantAttributes: routing.attributes,
      },
      result: 'answered',
      status: 'active',
      ringingAt: now,
      answeredAt: now,
      callee,
      ...NOT_ENDED,
    };
    this.inboundCalls.push(record);
    const participant = this.deps.rooms.addParticipant(room, {
      identity: routing.identity,
      name: routing.name,
      metadata: routing.metadata,
      attributes: { ...routing.attributes, [SIP_ATTR.callStatus]: 'active' },
      kind: 'SIP',
    });
    record.participantId = participant.sid;
    const call: ActiveCall = {
      record,
      room,
      timers: this.deps.scheduler.group(),
      reply: undefined,
      info: new SIPParticipantInfo({ participantId: participant.sid, participantIdentity: participant.identity, roomName: room, sipCallId: callId }),
      transfer: undefined,
      leaving: false,
    };
    this.active.set(callId, call);
    this.byParticipant.set(participantKey(room, record.identity), callId);
    this.deps.events.emit('call_answered', { ...this.base(call), callee });
    if (options.hangupAfterMs !== undefined) {
      call.timers.after(options.hangupAfterMs, () => this.endCall(call, 'callee_hangup', 'CLIENT_INITIATED'));
    }
    if (record.options.maxCallDurationMs !== undefined) {
      call.timers.after(record.options.maxCallDurationMs, () => this.endCall(call, 'max_call_duration', 'CLIENT_INITIATED'));
    }
    return { ok: true, callId, room, identity: routing.identity, trunkId: routing.trunkId, ruleId: routing.ruleId };
  }

  /** Ends every call (answered ones end, pending requests get "service shutting down"). */
  closeAll(): void {
    for (const call of [...this.active.values()]) {
      if (call.record.result === 'answered') this.endCall(call, 'sim_closed', 'SERVER_SHUTDOWN');
      else this.failCall(call, psrpcError('canceled', LIVEKIT_MESSAGES.serviceShuttingDown), 'SERVER_SHUTDOWN', 'sim_closed');
    }
  }

  private now(): number {
    return this.deps.clock.now();
  }

  private findCall(room: string, identity: string): ActiveCall | undefined {
    const callId = this.byParticipant.get(participantKey(room, identity));
    return callId === undefined ? undefined : this.active.get(callId);
  }

  private base(call: ActiveCall): CallEventBase {
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

  private validate(req: CreateSIPParticipantRequest): TwirpError | undefined {
    // CreateSIPParticipantRequest.ValidateResult (livekit/protocol livekit/sip.go), in its order.
    if (req.sipTrunkId === '' && !req.trunk && req.sipNumber === '') {
      return twirpError('invalid_argument', 'missing sip trunk id and sip number');
    }
    if (req.sipCallTo === '') return twirpError('invalid_argument', 'missing sip callee number');
    if (req.sipCallTo.includes('@')) {
      return twirpError('invalid_argument', 'SipCallTo should be a phone number or SIP user, not a full SIP URI');
    }
    if (req.roomName === '') return twirpError('invalid_argument', 'missing room name');
    return undefined;
  }

  private refuse(record: SimCallRecord, error: TwirpError): never {
    record.result = 'refused';
    record.twirpCode = error.code;
    record.httpStatus = error.httpStatus;
    record.errorMessage = error.message;
    record.endedAt = this.now();
    throw error;
  }

  private createParticipant(req: CreateSIPParticipantRequest, ctx: TwirpCallContext): Promise<SIPParticipantInfo> {
    ensureSipCallPermission(ctx.grants);
    const options: SimCallOptions = {
      waitUntilAnswered: req.waitUntilAnswered,
      ringingTimeoutMs: durationMs(req.ringingTimeout),
      maxCallDurationMs: durationMs(req.maxCallDuration),
      dtmf: req.dtmf,
      playDialtone: req.playDialtone || req.playRingtone,
      hidePhoneNumber: req.hidePhoneNumber,
      krispEnabled: req.krispEnabled,
      participantName: req.participantName,
      participantMetadata: req.participantMetadata,
      participantAttributes: { ...req.participantAttributes },
      headers: { ...req.headers },
    };
    const record: SimCallRecord = {
      callId: newId(ID_PREFIX.sipCall),
      direction: 'outbound',
      phoneNumber: req.sipCallTo,
      trunkId: req.sipTrunkId,
      fromNumber: req.sipNumber,
      room: req.roomName,
      identity: req.participantIdentity || `sip_${req.sipCallTo}`,
      participantId: undefined,
      attempt: undefined,
      behavior: undefined,
      receivedAt: ctx.receivedAt,
      options,
      result: 'pending',
      status: undefined,
      ringingAt: undefined,
      answeredAt: undefined,
      callee: undefined,
      ...NOT_ENDED,
    };
    this.calls.push(record);
    ctx.clientGone.addEventListener('abort', () => {
      record.clientDisconnected = true;
    });

    const invalid = this.validate(req);
    if (invalid) this.refuse(record, invalid);
    const trunk = req.sipTrunkId === '' ? undefined : this.deps.trunks.outbound.get(req.sipTrunkId);
    if (req.sipTrunkId !== '' && !trunk) this.refuse(record, twirpError('not_found', LIVEKIT_MESSAGES.trunkNotFound));
    const fromNumber = req.sipNumber || trunk?.numbers[0] || '';
    if (fromNumber === '') this.refuse(record, psrpcError('failed_precondition', LIVEKIT_MESSAGES.noNumbersOnTrunk));
    record.fromNumber = fromNumber;

    const { attempt, behavior } = this.deps.network.nextAttempt(req.sipCallTo);
    record.attempt = attempt;
    record.behavior = behavior;
    const plan = planCall(behavior, {
      ringingTimeoutMs: options.ringingTimeoutMs ?? LIVEKIT_DEFAULT_RINGING_TIMEOUT_MS,
      waitUntilAnswered: options.waitUntilAnswered,
      ringOut: this.deps.network.ringOut,
      trunkHasCredentials: trunk !== undefined && trunk.authUsername !== '' && trunk.authPassword !== '',
    });

    if (plan.kind === 'platform_unavailable') {
      this.recordFailure(record, plan.error, 'platform_unavailable');
      this.deps.events.emit('call_failed', {
        callId: record.callId,
        room: record.room,
        identity: record.identity,
        phoneNumber: record.phoneNumber,
        trunkId: record.trunkId,
        attempt,
        at: this.now(),
        ...this.failureFields(plan.error, 'platform_unavailable'),
      });
      throw plan.error;
    }

    const attributes: Record<string, string> = { ...options.participantAttributes };
    attributes[SIP_ATTR.callId] = record.callId;
    attributes[SIP_ATTR.trunkId] = req.sipTrunkId;
    if (!options.hidePhoneNumber) {
      attributes[SIP_ATTR.phoneNumber] = req.sipCallTo;
      attributes[SIP_ATTR.hostname] = trunk?.address ?? req.trunk?.hostname ?? '';
      attributes[SIP_ATTR.trunkPhoneNumber] = fromNumber;
    }
    attributes[SIP_ATTR.callStatus] = 'dialing';
    const participant = this.deps.rooms.addParticipant(record.room, {
      identity: record.identity,
      name: options.participantName,
      metadata: options.participantMetadata,
      attributes,
      kind: 'SIP',
    });
    record.participantId = participant.sid;
    record.status = 'dialing';

    const call: ActiveCall = {
      record,
      room: record.room,
      timers: this.deps.scheduler.group(),
      reply: undefined,
      info: new SIPParticipantInfo({
        participantId: participant.sid,
        participantIdentity: participant.identity,
        roomName: record.room,
        sipCallId: record.callId,
      }),
      transfer: undefined,
      leaving: false,
    };
    this.active.set(record.callId, call);
    this.byParticipant.set(participantKey(call.room, record.identity), record.callId);
    this.deps.events.emit('call_dialing', this.base(call));

    const waits = options.waitUntilAnswered || plan.kind === 'hang';
    if (waits) call.reply = deferred<SIPParticipantInfo>();
    this.schedule(call, plan);
    return call.reply ? call.reply.promise : Promise.resolve(call.info);
  }

  private schedule(call: ActiveCall, plan: Exclude<NetworkCallPlan, { kind: 'platform_unavailable' }>): void {
    if (plan.ringAtMs !== undefined) call.timers.after(plan.ringAtMs, () => this.ring(call));
    switch (plan.kind) {
      case 'answer':
        call.timers.after(plan.answerAtMs, () => this.answer(call, plan.callee, plan.hangupAfterMs));
        return;
      case 'fail':
        call.timers.after(plan.failAtMs, () => this.failCall(call, plan.error, plan.disconnectReason, plan.reason));
        return;
      case 'hang':
        call.timers.after(plan.giveUpAtMs, () => this.failCall(call, plan.error, 'UNKNOWN_REASON', 'request_timeout'));
        return;
    }
  }

  private setStatus(call: ActiveCall, status: SipCallStatus): void {
    call.record.status = status;
    const participant = this.deps.rooms.getParticipant(call.room, call.record.identity);
    if (participant) participant.attributes[SIP_ATTR.callStatus] = status;
  }

  private ring(call: ActiveCall): void {
    if (call.record.result !== 'pending' || call.record.status !== 'dialing') return;
    call.record.ringingAt = this.now();
    this.setStatus(call, 'ringing');
    this.deps.events.emit('call_ringing', this.base(call));
  }

  private answer(call: ActiveCall, callee: Callee, hangupAfterMs: number | undefined): void {
    if (call.record.result !== 'pending') return;
    const record = call.record;
    record.result = 'answered';
    record.answeredAt = this.now();
    record.callee = callee;
    const becomeActive = (): void => {
      this.setStatus(call, 'active');
      call.reply?.resolve(call.info);
    };
    if (record.options.dtmf !== '') {
      this.setStatus(call, 'automation');
      call.timers.after(dtmfDurationMs(record.options.dtmf), becomeActive);
    } else {
      becomeActive();
    }
    this.deps.events.emit('call_answered', { ...this.base(call), callee });
    if (hangupAfterMs !== undefined) {
      call.timers.after(hangupAfterMs, () => this.endCall(call, 'callee_hangup', 'CLIENT_INITIATED'));
    }
    const maxDuration = record.options.maxCallDurationMs;
    if (maxDuration !== undefined) {
      call.timers.after(maxDuration, () => this.endCall(call, 'max_call_duration', 'CLIENT_INITIATED'));
    }
  }

  private failureFields(error: TwirpError, reason: string) {
    return {
      sipStatusCode: error.sipStatusCode,
      sipStatus: error.sipStatus,
      twirpCode: error.code,
      httpStatus: error.httpStatus,
      message: error.message,
      reason,
    };
  }

  private recordFailure(record: SimCallRecord, error: TwirpError, reason: string): void {
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
  private failCall(call: ActiveCall, error: TwirpError, disconnectReason: DisconnectReasonName, reason: string): void {
    if (call.record.result !== 'pending') return;
    this.recordFailure(call.record, error, reason);
    this.finish(call, disconnectReason);
    call.reply?.reject(error);
    this.deps.events.emit('call_failed', { ...this.base(call), ...this.failureFields(error, reason) });
  }

  /** An answered call ends: the callee hears the hang-up (or hangs up), the participant leaves. */
  private endCall(call: ActiveCall, reason: CallEndReason, disconnectReason: DisconnectReasonName): void {
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
    if (call.transfer) this.transferCallEnded(call.transfer);
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

  private transfer(req: TransferSIPParticipantRequest, ctx: TwirpCallContext): Promise<TransferSIPParticipantResponse> {
    if (req.roomName === '') throw psrpcError('invalid_argument', 'Missing room name');
    if (req.participantIdentity === '') throw psrpcError('invalid_argument', 'Missing participant identity');
    ensureSipCallPermission(ctx.grants);
    ensureAdminPermission(ctx.grants, req.roomName);
    if (req.transferTo === '') throw twirpError('invalid_argument', 'missing transfer to');
    if (!TRANSFER_TARGET_PATTERN.test(req.transferTo)) {
      throw twirpError('invalid_argument', 'transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)');
    }
    const participant = this.deps.rooms.getParticipant(req.roomName, req.participantIdentity);
    if (!participant) throw psrpcError('not_found', LIVEKIT_MESSAGES.participantNotFound);
    const callId = participant.attributes[SIP_ATTR.callId];
    if (callId === undefined) throw psrpcError('invalid_argument', LIVEKIT_MESSAGES.noSipSession);
    const call = this.active.get(callId);
    if (!call || call.record.result !== 'answered') {
      throw psrpcError('failed_precondition', LIVEKIT_MESSAGES.transferNotEstablished);
    }
    if (call.transfer) {
      if (call.transfer.record.transferTo !== req.transferTo) {
        throw psrpcError('invalid_argument', 'call already being transferred elsewhere');
      }
      return call.transfer.reply.promise; // a repeated request waits for the same outcome
    }

    const record: SimTransferRecord = {
      transferId: newId(ID_PREFIX.transfer),
      callId,
      room: req.roomName,
      identity: req.participantIdentity,
      transferTo: req.transferTo,
      requestedAt: ctx.receivedAt,
      ringingTimeoutMs: durationMs(req.ringingTimeout) ?? LIVEKIT_TRANSFER_DEADLINE_MS,
      outcome: 'pending',
      respondedAt: undefined,
      sipStatusCode: undefined,
      sipStatus: undefined,
    };
    this.transfers.push(record);
    const pending: PendingTransfer = { record, reply: deferred(), timers: this.deps.scheduler.group() };
    call.transfer = pending;
    const eventBase = () => ({
      transferId: record.transferId,
      room: record.room,
      identity: record.identity,
      transferTo: record.transferTo,
      callId,
      at: this.now(),
    });
    this.deps.events.emit('transfer_requested', eventBase());

    const respond = (status: SIPTransferStatus, reason: SIPTransferReason): void => {
      record.respondedAt = this.now();
      pending.reply.resolve(new TransferSIPParticipantResponse({ transferId: record.transferId, status, reason }));
    };
    const settle = (): void => {
      pending.timers.cancel();
      if (call.transfer === pending) call.transfer = undefined;
    };
    const plan = planTransfer(this.deps.network.transferBehavior(req.transferTo));
    switch (plan.kind) {
      case 'accept':
        pending.timers.after(plan.respondAfterMs, () => {
          record.outcome = 'completed';
          respond(SIPTransferStatus.STS_TRANSFER_SUCCESSFUL, SIPTransferReason.STR_COMPLETED);
          settle();
          this.deps.events.emit('transfer_completed', eventBase());
          call.timers.after(plan.leaveAfterMs, () => this.endCall(call, 'transferred', 'CLIENT_INITIATED'));
        });
        break;
      case 'reject': {
        const fail = (): void => {
          record.outcome = plan.silent ? 'silently_failed' : 'failed';
          record.sipStatusCode = plan.sipStatusCode;
          record.sipStatus = plan.sipStatus;
          if (!plan.silent) {
            record.respondedAt = this.now();
            pending.reply.reject(sipFailureError(plan.sipStatusCode, plan.sipStatus, 'transfer'));
          }
          settle();
          this.deps.events.emit('transfer_failed', {
            ...eventBase(),
            sipStatusCode: plan.sipStatusCode,
            sipStatus: plan.sipStatus,
            silent: plan.silent,
            reason: 'rejected',
          });
        };
        if (plan.silent) respond(SIPTransferStatus.STS_TRANSFER_ONGOING, SIPTransferReason.STR_UNSPECIFIED);
        pending.timers.after(plan.afterMs, fail);
        break;
      }
      case 'no_answer': {
        if (plan.silent) respond(SIPTransferStatus.STS_TRANSFER_ONGOING, SIPTransferReason.STR_UNSPECIFIED);
        pending.timers.after(record.ringingTimeoutMs, () => {
          record.outcome = plan.silent ? 'silently_failed' : 'failed';
          if (!plan.silent) {
            record.respondedAt = this.now();
            pending.reply.reject(psrpcError('canceled', LIVEKIT_MESSAGES.referCanceled));
          }
          settle();
          this.deps.events.emit('transfer_failed', {
            ...eventBase(),
            sipStatusCode: undefined,
            sipStatus: undefined,
            silent: plan.silent,
            reason: 'no_answer',
          });
        });
        break;
      }
    }
    return pending.reply.promise;
  }

  /** The call ended while a REFER was pending: livekit/sip reports the transfer as over, without error. */
  private transferCallEnded(pending: PendingTransfer): void {
    pending.timers.cancel();
    const record = pending.record;
    if (record.outcome !== 'pending') return;
    record.outcome = 'call_ended';
    if (!pending.reply.settled) {
      record.respondedAt = this.now();
      pending.reply.resolve(
        new TransferSIPParticipantResponse({
          transferId: record.transferId,
          status: SIPTransferStatus.STS_TRANSFER_FAILED,
          reason: SIPTransferReason.STR_CALL_ENDED,
        }),
      );
    }
    this.deps.events.emit('transfer_failed', {
      transferId: record.transferId,
      room: record.room,
      identity: record.identity,
      transferTo: record.transferTo,
      callId: record.callId,
      at: this.now(),
      sipStatusCode: undefined,
      sipStatus: undefined,
      silent: false,
      reason: 'call_ended',
    });
  }
}
