/**
 * SIP participant attributes LiveKit sets (livekit/protocol livekit/attrs.go), and the values of `sip.callStatus`
 * (livekit/sip pkg/sip/outbound.go and inbound.go set them as the call goes). One place for the agent, the consumer
 * and the simulator.
 */
export const SIP_ATTR = {
  callId: 'sip.callID',
  trunkId: 'sip.trunkID',
  /** The number outside LiveKit: the caller on an inbound call, the called number on an outbound one. */
  phoneNumber: 'sip.phoneNumber',
  hostname: 'sip.hostname',
  trunkPhoneNumber: 'sip.trunkPhoneNumber',
  /** The call's progress: one of SipCallStatus. */
  callStatus: 'sip.callStatus',
  /** The dispatch rule that took an inbound call. */
  ruleId: 'sip.ruleID',
} as const;

/** `sip.callStatus` values: dialing, ringing (a 180 came back), automation (sending DTMF after the answer), active, hangup. */
export type SipCallStatus = 'dialing' | 'ringing' | 'automation' | 'active' | 'hangup';
