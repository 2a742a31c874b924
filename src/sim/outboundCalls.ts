/**
 * Outbound calls: CreateSIPParticipant as livekit-server + livekit/sip handle it (pkg/service/sip.go,
 * pkg/sip/outbound.go): the request validated, the trunk looked up, the SIP participant in the room (`dialing`), the
 * scripted phone network's answer scheduled (ringing, answer, failure or a hang), and the DTMF sent after the answer.
 */
import { CreateSIPParticipantRequest, SIPParticipantInfo } from '@livekit/protocol';
import { SIP_ATTR } from '../core/sipAttributes.js';
import { ensureSipCallPermission } from './auth.js';
import { ID_PREFIX, newId } from './ids.js';
import { type NetworkCallPlan, LIVEKIT_DEFAULT_RINGING_TIMEOUT_MS, planCall } from './phoneNetwork.js';
import type { Callee } from './scenarioSchema.js';
import {
  type ActiveCall,
  deferred,
  durationMs,
  NOT_ENDED,
  type SimCallOptions,
  type SimCallRecord,
  type SipCallRegistry,
} from './sipCallState.js';
import { LIVEKIT_MESSAGES, type TwirpError, psrpcError, twirpError } from './twirpErrors.js';
import type { TwirpCallContext } from './twirpServer.js';

/** Sending initial DTMF: each digit takes this long, a `w` pauses half a second (LiveKit's convention). */
const DTMF_DIGIT_MS = 250;
const DTMF_PAUSE_MS = 500;
const DTMF_PAUSE_CHAR = 'w';

function dtmfDurationMs(dtmf: string): number {
  let total = 0;
  for (const char of dtmf) total += char === DTMF_PAUSE_CHAR ? DTMF_PAUSE_MS : DTMF_DIGIT_MS;
  return total;
}

export class OutboundCalls {
  constructor(private readonly reg: SipCallRegistry) {}

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
    record.endedAt = this.reg.now();
    throw error;
  }

  createParticipant(req: CreateSIPParticipantRequest, ctx: TwirpCallContext): Promise<SIPParticipantInfo> {
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
    this.reg.calls.push(record);
    ctx.clientGone.addEventListener('abort', () => {
      record.clientDisconnected = true;
    });

    const invalid = this.validate(req);
    if (invalid) this.refuse(record, invalid);
    const trunk = req.sipTrunkId === '' ? undefined : this.reg.deps.trunks.outbound.get(req.sipTrunkId);
    if (req.sipTrunkId !== '' && !trunk) this.refuse(record, twirpError('not_found', LIVEKIT_MESSAGES.trunkNotFound));
    const fromNumber = req.sipNumber || trunk?.numbers[0] || '';
    if (fromNumber === '') this.refuse(record, psrpcError('failed_precondition', LIVEKIT_MESSAGES.noNumbersOnTrunk));
    record.fromNumber = fromNumber;

    const { attempt, behavior } = this.reg.deps.network.nextAttempt(req.sipCallTo);
    record.attempt = attempt;
    record.behavior = behavior;
    const plan = planCall(behavior, {
      ringingTimeoutMs: options.ringingTimeoutMs ?? LIVEKIT_DEFAULT_RINGING_TIMEOUT_MS,
      waitUntilAnswered: options.waitUntilAnswered,
      ringOut: this.reg.deps.network.ringOut,
      trunkHasCredentials: trunk !== undefined && trunk.authUsername !== '' && trunk.authPassword !== '',
    });

    if (plan.kind === 'platform_unavailable') {
      this.reg.recordFailure(record, plan.error, 'platform_unavailable');
      this.reg.deps.events.emit('call_failed', {
        callId: record.callId,
        room: record.room,
        identity: record.identity,
        phoneNumber: record.phoneNumber,
        trunkId: record.trunkId,
        attempt,
        at: this.reg.now(),
        ...this.reg.failureFields(plan.error, 'platform_unavailable'),
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
    const participant = this.reg.deps.rooms.addParticipant(record.room, {
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
      timers: this.reg.deps.scheduler.group(),
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
    this.reg.register(call);
    this.reg.deps.events.emit('call_dialing', this.reg.base(call));

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
        call.timers.after(plan.failAtMs, () => this.reg.failCall(call, plan.error, plan.disconnectReason, plan.reason));
        return;
      case 'hang':
        call.timers.after(plan.giveUpAtMs, () => this.reg.failCall(call, plan.error, 'UNKNOWN_REASON', 'request_timeout'));
        return;
    }
  }

  private ring(call: ActiveCall): void {
    if (call.record.result !== 'pending' || call.record.status !== 'dialing') return;
    call.record.ringingAt = this.reg.now();
    this.reg.setStatus(call, 'ringing');
    this.reg.deps.events.emit('call_ringing', this.reg.base(call));
  }

  private answer(call: ActiveCall, callee: Callee, hangupAfterMs: number | undefined): void {
    if (call.record.result !== 'pending') return;
    const record = call.record;
    record.result = 'answered';
    record.answeredAt = this.reg.now();
    record.callee = callee;
    const becomeActive = (): void => {
      this.reg.setStatus(call, 'active');
      call.reply?.resolve(call.info);
    };
    if (record.options.dtmf !== '') {
      this.reg.setStatus(call, 'automation');
      call.timers.after(dtmfDurationMs(record.options.dtmf), becomeActive);
    } else {
      becomeActive();
    }
    this.reg.deps.events.emit('call_answered', { ...this.reg.base(call), callee });
    if (hangupAfterMs !== undefined) {
      call.timers.after(hangupAfterMs, () => this.reg.endCall(call, 'callee_hangup', 'CLIENT_INITIATED'));
    }
    const maxDuration = record.options.maxCallDurationMs;
    if (maxDuration !== undefined) {
      call.timers.after(maxDuration, () => this.reg.endCall(call, 'max_call_duration', 'CLIENT_INITIATED'));
    }
  }
}
