/**
 * TransferSIPParticipant (a cold transfer, SIP REFER) as livekit-server + livekit/sip handle it (pkg/service/sip.go,
 * pkg/sip/client.go): the request checked, then the scripted transfer target accepts (the participant leaves),
 * rejects (with a SIP status, or silently after a 200), or never answers; a repeated request waits for the same end.
 */
import { SIPTransferReason, SIPTransferStatus, TransferSIPParticipantRequest, TransferSIPParticipantResponse } from '@livekit/protocol';
import { SIP_ATTR } from '../core/sipAttributes.js';
import { ensureAdminPermission, ensureSipCallPermission } from './auth.js';
import { ID_PREFIX, newId } from './ids.js';
import { LIVEKIT_TRANSFER_DEADLINE_MS, planTransfer } from './phoneNetwork.js';
import { TRANSFER_TARGET_PATTERN } from './scenarioSchema.js';
import { deferred, durationMs, type PendingTransfer, type SimTransferRecord, type SipCallRegistry } from './sipCallState.js';
import { LIVEKIT_MESSAGES, psrpcError, sipFailureError, twirpError } from './twirpErrors.js';
import type { TwirpCallContext } from './twirpServer.js';

export class SipTransfers {
  constructor(private readonly reg: SipCallRegistry) {}

  transfer(req: TransferSIPParticipantRequest, ctx: TwirpCallContext): Promise<TransferSIPParticipantResponse> {
    if (req.roomName === '') throw psrpcError('invalid_argument', 'Missing room name');
    if (req.participantIdentity === '') throw psrpcError('invalid_argument', 'Missing participant identity');
    ensureSipCallPermission(ctx.grants);
    ensureAdminPermission(ctx.grants, req.roomName);
    if (req.transferTo === '') throw twirpError('invalid_argument', 'missing transfer to');
    if (!TRANSFER_TARGET_PATTERN.test(req.transferTo)) {
      throw twirpError('invalid_argument', 'transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)');
    }
    const participant = this.reg.deps.rooms.getParticipant(req.roomName, req.participantIdentity);
    if (!participant) throw psrpcError('not_found', LIVEKIT_MESSAGES.participantNotFound);
    const callId = participant.attributes[SIP_ATTR.callId];
    if (callId === undefined) throw psrpcError('invalid_argument', LIVEKIT_MESSAGES.noSipSession);
    const call = this.reg.active.get(callId);
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
    this.reg.transfers.push(record);
    const pending: PendingTransfer = { record, reply: deferred(), timers: this.reg.deps.scheduler.group() };
    call.transfer = pending;
    const eventBase = () => ({
      transferId: record.transferId,
      room: record.room,
      identity: record.identity,
      transferTo: record.transferTo,
      callId,
      at: this.reg.now(),
    });
    this.reg.deps.events.emit('transfer_requested', eventBase());

    const respond = (status: SIPTransferStatus, reason: SIPTransferReason): void => {
      record.respondedAt = this.reg.now();
      pending.reply.resolve(new TransferSIPParticipantResponse({ transferId: record.transferId, status, reason }));
    };
    const settle = (): void => {
      pending.timers.cancel();
      if (call.transfer === pending) call.transfer = undefined;
    };
    const plan = planTransfer(this.reg.deps.network.transferBehavior(req.transferTo));
    switch (plan.kind) {
      case 'accept':
        pending.timers.after(plan.respondAfterMs, () => {
          record.outcome = 'completed';
          respond(SIPTransferStatus.STS_TRANSFER_SUCCESSFUL, SIPTransferReason.STR_COMPLETED);
          settle();
          this.reg.deps.events.emit('transfer_completed', eventBase());
          call.timers.after(plan.leaveAfterMs, () => this.reg.endCall(call, 'transferred', 'CLIENT_INITIATED'));
        });
        break;
      case 'reject': {
        const fail = (): void => {
          record.outcome = plan.silent ? 'silently_failed' : 'failed';
          record.sipStatusCode = plan.sipStatusCode;
          record.sipStatus = plan.sipStatus;
          if (!plan.silent) {
            record.respondedAt = this.reg.now();
            pending.reply.reject(sipFailureError(plan.sipStatusCode, plan.sipStatus, 'transfer'));
          }
          settle();
          this.reg.deps.events.emit('transfer_failed', {
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
            record.respondedAt = this.reg.now();
            pending.reply.reject(psrpcError('canceled', LIVEKIT_MESSAGES.referCanceled));
          }
          settle();
          this.reg.deps.events.emit('transfer_failed', {
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
}
