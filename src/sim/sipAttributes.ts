/** SIP participant attributes (livekit/protocol livekit/attrs.go). */
export const SIP_ATTR = {
  callId: 'sip.callID',
  trunkId: 'sip.trunkID',
  phoneNumber: 'sip.phoneNumber',
  hostname: 'sip.hostname',
  trunkPhoneNumber: 'sip.trunkPhoneNumber',
  callStatus: 'sip.callStatus',
  /** The dispatch rule that took an inbound call. */
  ruleId: 'sip.ruleID',
} as const;
