import type { AttemptObservation } from '../core/callStore.js';
import type { DialFailure, DispatchFailure } from '../core/classifySipError.js';
import type { RetryableOutcome } from './retryPolicy.js';

/**
 * How a dial attempt that did not connect ended, whoever found out: the consumer that sent CreateSIPParticipant
 * (classifySipError, where every DialFailure fits), or a consumer that took over an attempt whose dialer died and
 * learned its end from the agent in the room (no SIP status then) or not at all.
 * - `retry`: the number may answer later; `outcome` is the call's outcome once its attempts are used up.
 * - `final`: the answer is definitive (declined, invalid number, trunk misconfigured): no retry.
 * - `platform`: LiveKit or the network failed, the callee was not reached: the attempt is not spent.
 */
export type AttemptEnd =
  | { kind: 'retry'; outcome: RetryableOutcome; sipStatusCode?: number; sipStatus?: string; reason?: string }
  | {
      kind: 'final';
      outcome: 'declined' | 'invalid_number' | 'failed';
      sipStatusCode?: number;
      sipStatus?: string;
      reason?: string;
      trunkConfigurationError?: boolean;
    }
  | { kind: 'platform'; reason: string; httpStatus?: number };

/**
 * A classified CreateSIPParticipant failure as the attempt's end. LiveKit refusing our own credentials or grants is
 * not the callee's answer and would fail every call alike: it backs the queue off like platform trouble (attempts not
 * spent, the call ends `failed` only after DIAL_MAX_PLATFORM_ERRORS), so fixing the settings loses no call.
 */
export function fromDialFailure(failure: DialFailure): AttemptEnd {
  if (failure.kind === 'final' && failure.livekitConfigurationError) {
    return { kind: 'platform', reason: `LiveKit refused the dialer's credentials: ${failure.reason}`, httpStatus: failure.httpStatus };
  }
  return failure;
}

/** A failed agent dispatch (the call was not dialed): a request LiveKit can never accept ends the call, the rest backs off. */
export function fromDispatchFailure(failure: DispatchFailure): AttemptEnd {
  if (failure.kind === 'final' && !failure.livekitConfigurationError) {
    return { kind: 'final', outcome: 'failed', reason: `agent dispatch refused: ${failure.reason}` };
  }
  return { kind: 'platform', reason: `agent dispatch failed: ${failure.reason}`, httpStatus: failure.httpStatus };
}

/** Why an attempt taken over from a consumer that died counts as spent although nobody saw how it ended. */
export const UNKNOWN_END_REASON = 'the consumer dialing this attempt stopped; LiveKit no longer shows the call, so how it ended is unknown';

/**
 * Why an attempt whose SIP answer was lost ends `failed` when the agent saw the callee unavailable before any ringing
 * (see endFromObservation). Written on the record as the outcome's reason.
 */
export const UNAVAILABLE_UNKNOWN_REASON =
  'the number was not found or unavailable (SIP 404, 408 or 480, before any ringing), and the answer never reached the dialer, which LiveKit does not keep: ended without dialing it again, since a 404 is final';

/**
 * What an attempt whose dialer died ended as, from what the agent in its room saw: the SIP participant's
 * DisconnectReason and whether it had rung (`sip.callStatus` reached `ringing`). LiveKit keeps no SIP status once the
 * participant is gone; livekit/sip (pkg/sip classifyInviteError) maps 486/603/401/403/407 to USER_REJECTED and
 * 404/408/480 to USER_UNAVAILABLE, so the ringing tells them apart as well as anything can:
 * - rejected after ringing: someone declined. Final `declined`: ringing again someone who declined is worse than not
 *   retrying a line that was busy. (livekit/sip before the current versions also ended a ring-out with 486, which
 *   looks the same: such a ring-out ends `declined` too. Current versions end it with a timeout, USER_UNAVAILABLE.);
 * - rejected without ringing: busy (retried as busy);
 * - unavailable after ringing: it rang out (no answer);
 * - unavailable without ringing: a 404 (no such number: final), a 480 (switched off) or a 408 (the carrier never
 *   answered), which nothing can tell apart any more: livekit/sip hands the SIP status only to the CreateSIPParticipant
 *   caller and to the IOInfo service (`SIPCallInfo.call_status_code`), which livekit-server keeps nowhere
 *   (pkg/service/ioservice.go `UpdateSIPCallState` is a placeholder in v1.13.5). Final `failed`
 *   (UNAVAILABLE_UNKNOWN_REASON): dialing it again would redial a number that may have answered a final 404, which the
 *   dialer promises never to do; the price is one retry of a phone that was switched off, in the rare case where the
 *   dial's answer was lost. `failed`, not `invalid_number`: a switched-off phone is not an invalid number, and lists
 *   are often cleaned of invalid numbers;
 * - nothing seen (no agent in the room, or it did not say): the attempt is spent with an unknown result and retried
 *   after the normal delay, never at once.
 */
export function endFromObservation(observed: AttemptObservation | undefined): AttemptEnd {
  const rang = observed?.rang ?? observed?.lastCallStatus === 'ringing';
  const unseen = 'while no consumer followed the call; LiveKit keeps no SIP status';
  switch (observed?.disconnectReason) {
    case 'USER_REJECTED':
      return rang
        ? { kind: 'final', outcome: 'declined', reason: `the callee declined after ringing ${unseen}` }
        : { kind: 'retry', outcome: 'busy', reason: `the callee rejected the call without ringing (busy) ${unseen}` };
    case 'USER_UNAVAILABLE':
      return rang
        ? { kind: 'retry', outcome: 'no_answer', reason: `the call rang out ${unseen}` }
        : { kind: 'final', outcome: 'failed', reason: UNAVAILABLE_UNKNOWN_REASON };
    case 'SIP_TRUNK_FAILURE':
      return { kind: 'retry', outcome: 'failed', reason: `the SIP trunk failed ${unseen}` };
    default:
      return { kind: 'retry', outcome: 'failed', reason: UNKNOWN_END_REASON };
  }
}
