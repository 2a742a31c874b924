/**
 * Inbound calls: a caller dials one of our numbers and LiveKit's SIP service takes it (livekit/sip pkg/sip/inbound.go,
 * livekit-server pkg/sip dispatch rules): routed by the inbound trunks and dispatch rules, the room created with the
 * rule's room configuration, the caller's SIP participant joined and active.
 */
import { SIPParticipantInfo } from '@livekit/protocol';
import { SIP_ATTR } from '../core/sipAttributes.js';
import { ID_PREFIX, newId } from './ids.js';
import { routeInboundCall, type InboundCallRequest } from './inboundDispatch.js';
import { resolveCallee } from './phoneNetwork.js';
import type { Callee } from './scenarioSchema.js';
import { type ActiveCall, durationMs, NOT_ENDED, type SimCallOptions, type SimCallRecord, type SipCallRegistry } from './sipCallState.js';

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

export class InboundCalls {
  constructor(private readonly reg: SipCallRegistry) {}

  /**
   * An inbound call as LiveKit's SIP service takes it: routed by the inbound trunks and dispatch rules, the room
   * created with the rule's room configuration (which dispatches its agents), the caller's SIP participant joined
   * and active. The caller then behaves as `caller` says; `hangupCallee` hangs them up.
   */
  placeInbound(options: InboundCallOptions): InboundCallResult {
    const callId = newId(ID_PREFIX.sipCall);
    const trunks = this.reg.deps.trunks;
    const routing = routeInboundCall([...trunks.inbound.values()], [...trunks.dispatchRules.values()], options, callId);
    if (!routing.ok) return routing;
    const { room, roomConfig } = routing;
    if (!this.reg.deps.rooms.has(room)) {
      this.reg.deps.rooms.ensureRoom(room, {
        metadata: roomConfig?.metadata ?? '',
        emptyTimeout: roomConfig?.emptyTimeout,
        departureTimeout: roomConfig?.departureTimeout,
        maxParticipants: roomConfig?.maxParticipants,
      });
      for (const agent of roomConfig?.agents ?? []) this.reg.deps.rooms.addDispatch(room, agent.agentName, agent.metadata);
    }
    const now = this.reg.now();
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
    this.reg.inboundCalls.push(record);
    const participant = this.reg.deps.rooms.addParticipant(room, {
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
      timers: this.reg.deps.scheduler.group(),
      reply: undefined,
      info: new SIPParticipantInfo({ participantId: participant.sid, participantIdentity: participant.identity, roomName: room, sipCallId: callId }),
      transfer: undefined,
      leaving: false,
    };
    this.reg.register(call);
    this.reg.deps.events.emit('call_answered', { ...this.reg.base(call), callee });
    if (options.hangupAfterMs !== undefined) {
      call.timers.after(options.hangupAfterMs, () => this.reg.endCall(call, 'callee_hangup', 'CLIENT_INITIATED'));
    }
    if (record.options.maxCallDurationMs !== undefined) {
      call.timers.after(record.options.maxCallDurationMs, () => this.reg.endCall(call, 'max_call_duration', 'CLIENT_INITIATED'));
    }
    return { ok: true, callId, room, identity: routing.identity, trunkId: routing.trunkId, ruleId: routing.ruleId };
  }
}
