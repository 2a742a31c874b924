/**
 * The simulator's SIP service: CreateSIPParticipant (outboundCalls.ts), inbound calls (inboundCalls.ts) and
 * TransferSIPParticipant (sipTransfers.ts), on the calls' shared records and life (sipCallState.ts), driven by the
 * scripted phone network, as livekit-server + livekit/sip behave (pkg/service/sip.go, pkg/sip/client.go,
 * pkg/sip/outbound.go).
 */
import { CreateSIPParticipantRequest, TransferSIPParticipantRequest } from '@livekit/protocol';
import { SIP_ATTR, type SipCallStatus } from '../core/sipAttributes.js';
import { InboundCalls, type InboundCallOptions, type InboundCallResult } from './inboundCalls.js';
import { OutboundCalls } from './outboundCalls.js';
import { SipCallRegistry, type SimCallRecord, type SimTransferRecord, type SipCallsDeps } from './sipCallState.js';
import { SipTransfers } from './sipTransfers.js';
import { rpc, type TwirpMethod } from './twirpServer.js';

export { SIP_ATTR, type SipCallStatus };
export type { InboundCallOptions, InboundCallResult } from './inboundCalls.js';
export type { SimCallOptions, SimCallRecord, SimCallResult, SimTransferOutcome, SimTransferRecord, SipCallsDeps } from './sipCallState.js';

export class SipCalls {
  private readonly registry: SipCallRegistry;
  private readonly outbound: OutboundCalls;
  private readonly inbound: InboundCalls;
  private readonly transferring: SipTransfers;

  constructor(deps: SipCallsDeps) {
    this.registry = new SipCallRegistry(deps);
    this.outbound = new OutboundCalls(this.registry);
    this.inbound = new InboundCalls(this.registry);
    this.transferring = new SipTransfers(this.registry);
  }

  /** Every CreateSIPParticipant received, in order, with its outcome. */
  get calls(): readonly SimCallRecord[] {
    return this.registry.calls;
  }

  get inboundCalls(): readonly SimCallRecord[] {
    return this.registry.inboundCalls;
  }

  get transfers(): readonly SimTransferRecord[] {
    return this.registry.transfers;
  }

  methods(): Record<string, TwirpMethod> {
    return {
      CreateSIPParticipant: rpc(CreateSIPParticipantRequest, (req, ctx) => this.outbound.createParticipant(req, ctx)),
      TransferSIPParticipant: rpc(TransferSIPParticipantRequest, (req, ctx) => this.transferring.transfer(req, ctx)),
    };
  }

  /** Makes the callee of the SIP participant hang up: an answered call ends, a ringing one is declined (603). */
  hangupCallee(room: string, identity: string): boolean {
    return this.registry.hangupCallee(room, identity);
  }

  /** Places an inbound call (InboundCalls.placeInbound). */
  placeInbound(options: InboundCallOptions): InboundCallResult {
    return this.inbound.placeInbound(options);
  }

  /** Ends every call (answered ones end, pending requests get "service shutting down"). */
  closeAll(): void {
    this.registry.closeAll();
  }
}
