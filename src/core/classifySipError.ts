/**
 * What a failed LiveKit request means for a call: CreateSIPParticipant (`classifySipError`) and CreateDispatch
 * (`classifyDispatchError`).
 *
 * Decided by code: the callee's SIP status first, then the Twirp code (or the HTTP status when the answer was not
 * a Twirp error), then the time the request took against the ringing timeout. Message text is read only where
 * LiveKit gives nothing else (named at each place, with its source).
 *
 * Sources read (not copied):
 * - livekit-server-sdk 2.19 `TwirpRPC.js` (`ServerError`, `SipCallError`, `toTwirpError`: a reply parses as Twirp
 *   JSON only with `Content-Type: application/json`, otherwise `code` is undefined and `message` is the body) and
 *   `SipClient.js` (`asSipCallError`: CreateSIPParticipant and TransferSIPParticipant throw `SipCallError` exactly
 *   when the error's metadata has a `sip_status_code` key; every other failure is a `ServerError` or a fetch error).
 * - livekit-server `pkg/service/sip.go` (CreateSIPParticipant: `twirpAuthError` → unauthenticated, trunk not found →
 *   not_found, request validation → invalid_argument, `ErrSIPNotConnected` → internal, psrpc errors passed through),
 *   `agent_dispatch_service.go` (CreateDispatch: metadata over `limit.max_metadata_size` (512 KiB) or attributes over
 *   64 KiB → invalid_argument), `utils.go` `RequestBodyLimiter` (a body over `limit.max_api_request_body_size`,
 *   10 MiB, → HTTP 413 plain text "request body too large", before authentication), `auth.go` (bad token → 401
 *   plain text).
 * - livekit/sip `pkg/sip/outbound.go` (`sipResponse`: ringing timeout → canceled "sip request timed out"; `Invite`:
 *   digest auth failures → failed_precondition), `pkg/sip/errors.go` (`classifyInviteError`, `afterInvite`: a
 *   server-side failure once the INVITE went out is re-coded failed_precondition so clients do not dial again),
 *   `pkg/errors/errors.go` (`ApplySIPStatus`, "cpu exhausted" → unavailable), livekit/sip#857 (a ring-out that races
 *   an answer surfaces as failed_precondition "context deadline exceeded" at the ringing timeout).
 * - livekit/protocol `livekit/sip.go` (`SIPStatus.GRPCStatus`: 486/480 → resource_exhausted, 603 → permission_denied
 *   …), `rpc/sip.go` (trunk without numbers → failed_precondition); livekit/psrpc `errors.go` (no SIP node →
 *   unavailable "no response from servers", request deadline → deadline_exceeded).
 */
import { ServerError, SipCallError } from 'livekit-server-sdk';

/** Outcomes a failed dial can end in (never-connected calls). */
export type DialFailureOutcome = 'busy' | 'no_answer' | 'declined' | 'invalid_number' | 'failed';

/**
 * What a failed CreateSIPParticipant means for the call:
 * - `retry`: the number may answer later (busy, no answer, far-end 5xx), or the INVITE may have gone out and failed
 *   in a way that says nothing final about the number; the attempt is spent and the call retried after the normal
 *   delay; `outcome` is the terminal outcome once attempts are used.
 * - `final`: the number's answer is definitive (declined, invalid), or the request can never succeed as configured
 *   (trunk or LiveKit settings, a request LiveKit refuses); no retry.
 * - `platform`: LiveKit or the network is unavailable; nothing rang, so the attempt is not spent.
 *
 * `reason` is a short human text for logs and records (always set by the classifiers here). `sipStatusCode` and
 * `sipStatus` are set only when the far end answered with a SIP status.
 */
export type DialFailure =
  | { kind: 'retry'; outcome: 'busy' | 'no_answer' | 'failed'; sipStatusCode?: number; sipStatus?: string; reason?: string; httpStatus?: number }
  | {
      kind: 'final';
      outcome: 'declined' | 'invalid_number' | 'failed';
      sipStatusCode?: number;
      sipStatus?: string;
      /** The outbound trunk is misconfigured (credentials, unknown trunk, no numbers): every call on it fails alike. */
      trunkConfigurationError: boolean;
      /** LiveKit refused the API key/secret or its grants, or LIVEKIT_URL has no such API: every call fails alike. */
      livekitConfigurationError: boolean;
      reason: string;
      httpStatus?: number;
    }
  | { kind: 'platform'; reason: string; httpStatus?: number };

/**
 * What a failed CreateDispatch means for the call (nothing rang yet):
 * - `final`: LiveKit refuses this request and will refuse it again (metadata over 512 KiB → HTTP 400
 *   invalid_argument, a body over 10 MiB → HTTP 413, bad credentials or grants → 401/403): end the call as `failed`.
 *   `livekitConfigurationError` marks the ones only an operator can fix (every call fails alike).
 * - `platform`: LiveKit is unavailable (5xx, 429 quota, timeouts, transport errors): back off, attempt not spent.
 */
export type DispatchFailure =
  | { kind: 'final'; outcome: 'failed'; reason: string; httpStatus?: number; livekitConfigurationError: boolean }
  | { kind: 'platform'; reason: string; httpStatus?: number };

/** The SIP status a far end answered a call (or a REFER) with. */
export interface SipStatus {
  code: number;
  /** The SIP reason phrase (or the carrier's text), e.g. "Busy Here"; empty when LiveKit sent none. */
  status: string;
}

/**
 * livekit-server's default `limit.max_metadata_size` (pkg/config/config.go): CreateDispatch (and room/participant
 * metadata) over this many bytes (UTF-8) is refused with invalid_argument "metadata size exceeds limits".
 */
export const LIVEKIT_MAX_METADATA_BYTES = 512 * 1024;

/** A status that arrives this close to the ringing timeout (or later) came from the ringing timeout: a ring-out. */
export const RING_OUT_TOLERANCE_MS = 250;

const BUSY = new Set([486, 600]);
const NO_ANSWER = new Set([480, 408, 487]);
const DECLINED = new Set([603, 607, 608]);
const INVALID_NUMBER = new Set([404, 484, 604, 400]);
const TRUNK_AUTH = new Set([401, 403, 407]);
const SIP_BUSY_HERE = 486;
const SIP_SERVER_ERROR_MIN = 500;
const SIP_SERVER_ERROR_MAX = 599;
const HTTP_SERVER_ERROR_MIN = 500;

/**
 * The Twirp codes LiveKit answers with, plus two labels for answers that are not Twirp errors at all: a body over
 * livekit-server's request limit (413 plain text) and any other HTTP status without a Twirp body.
 */
export type LiveKitErrorCode =
  | 'canceled'
  | 'unknown'
  | 'invalid_argument'
  | 'malformed'
  | 'deadline_exceeded'
  | 'not_found'
  | 'bad_route'
  | 'already_exists'
  | 'permission_denied'
  | 'unauthenticated'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'aborted'
  | 'out_of_range'
  | 'unimplemented'
  | 'internal'
  | 'unavailable'
  | 'data_loss'
  | 'request_too_large'
  | 'unrecognized';

const TWIRP_CODES: ReadonlySet<string> = new Set<LiveKitErrorCode>([
  'canceled',
  'unknown',
  'invalid_argument',
  'malformed',
  'deadline_exceeded',
  'not_found',
  'bad_route',
  'already_exists',
  'permission_denied',
  'unauthenticated',
  'resource_exhausted',
  'failed_precondition',
  'aborted',
  'out_of_range',
  'unimplemented',
  'internal',
  'unavailable',
  'data_loss',
]);

/**
 * The code of an answer that carries no Twirp body, from its HTTP status: livekit-server's auth middleware (401
 * plain text), its body limiter (413 plain text), Go's mux for a path it does not serve (404 plain text), and
 * proxies in front of LiveKit (502/503/504 pages).
 */
const CODE_BY_HTTP_STATUS: Readonly<Record<number, LiveKitErrorCode>> = {
  400: 'invalid_argument',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'bad_route',
  408: 'deadline_exceeded',
  409: 'aborted',
  412: 'failed_precondition',
  413: 'request_too_large',
  429: 'resource_exhausted',
  501: 'unimplemented',
  503: 'unavailable',
};

function isTwirpCode(code: string): code is LiveKitErrorCode {
  return TWIRP_CODES.has(code);
}

/** The error's Twirp code, or the code its HTTP status stands for when the answer was not a Twirp error. */
export function liveKitErrorCode(err: ServerError): LiveKitErrorCode {
  if (err.code && isTwirpCode(err.code)) return err.code;
  const byStatus = CODE_BY_HTTP_STATUS[err.status];
  if (byStatus) return byStatus;
  return err.status >= HTTP_SERVER_ERROR_MIN ? 'internal' : 'unrecognized';
}

/**
 * The far end's SIP status carried by a failed CreateSIPParticipant or TransferSIPParticipant, or undefined when
 * there is none. livekit-server-sdk throws `SipCallError` exactly when LiveKit's error meta has `sip_status_code`
 * (SipClient.js `asSipCallError`); an empty or non-numeric code counts as none.
 */
export function sipStatusOfError(err: unknown): SipStatus | undefined {
  if (!(err instanceof SipCallError)) return undefined;
  const code = err.sipStatusCode;
  if (code === undefined || !Number.isInteger(code) || code <= 0) return undefined;
  return { code, status: err.sipStatus ?? '' };
}

/** "LiveKit API error 412 failed_precondition: …" for logs and records. */
export function describeLiveKitError(err: unknown): string {
  if (err instanceof ServerError) {
    return `LiveKit API error ${err.status}${err.code ? ` ${err.code}` : ''}: ${err.message}`;
  }
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}

/**
 * livekit/sip's digest-auth failures (pkg/sip/protocol.go `ErrAuthMaxRetry`, `ErrAuthMissingCreds`,
 * `ErrAuthNoHeader`, returned by `sipOutbound.Invite` in pkg/sip/outbound.go) and livekit/protocol's trunk without
 * numbers (rpc/sip.go `NewCreateSIPParticipantRequestResult`). All are failed_precondition with no SIP status and no
 * error details, the same code as a ring-out race or a server error after the INVITE (pkg/sip/errors.go
 * `afterInvite`), so the message is the only thing that tells a broken trunk apart. Matched as substrings because
 * psrpc prefixes "twirp error unknown: ".
 */
const TRUNK_CONFIGURATION_MESSAGES = [
  'max auth retry attempts reached for SIP invite',
  'sip server required auth, but no username or password was provided',
  'no auth header in sip invite response',
  'no numbers on outbound trunk',
] as const;

function isTrunkConfigurationMessage(message: string): boolean {
  return TRUNK_CONFIGURATION_MESSAGES.some((known) => message.includes(known));
}

/**
 * Codes LiveKit answers a ring-out with, no SIP status, at the ringing timeout: canceled "sip request timed out"
 * (pkg/sip/outbound.go `sipResponse`), failed_precondition "context deadline exceeded" when the timeout races an
 * answer (livekit/sip#857), deadline_exceeded when livekit-server's request deadline equals the ringing timeout.
 */
const RING_OUT_CODES: ReadonlySet<LiveKitErrorCode> = new Set(['canceled', 'failed_precondition', 'deadline_exceeded']);

/** LiveKit is unavailable: nothing was dialed, or nothing more can be known; try again later without an attempt. */
const PLATFORM_CODES: ReadonlySet<LiveKitErrorCode> = new Set([
  'unavailable',
  'internal',
  'unknown',
  'data_loss',
  'unimplemented',
  'resource_exhausted',
]);

/** LiveKit refuses the request itself; sending it again cannot succeed. */
const INVALID_REQUEST_CODES: ReadonlySet<LiveKitErrorCode> = new Set(['invalid_argument', 'malformed', 'out_of_range', 'request_too_large']);

/** The API key/secret, its grants, or LIVEKIT_URL are wrong. */
const LIVEKIT_CONFIGURATION_CODES: ReadonlySet<LiveKitErrorCode> = new Set(['unauthenticated', 'permission_denied', 'bad_route']);

export interface DialTiming {
  /** How long the CreateSIPParticipant request took before it failed. */
  elapsedMs: number;
  ringingTimeoutMs: number;
}

function classifySipStatus(sip: SipStatus, reachedRingingTimeout: boolean, httpStatus: number | undefined): DialFailure {
  const { code, status } = sip;
  const base = { sipStatusCode: code, sipStatus: status, httpStatus };
  const reason = `SIP ${code}${status ? ` ${status}` : ''}`;
  if (BUSY.has(code)) {
    // livekit/sip before #785 and some carriers end a call that rang out with 486, like a real busy
    const rangOut = code === SIP_BUSY_HERE && reachedRingingTimeout;
    return { kind: 'retry', outcome: rangOut ? 'no_answer' : 'busy', reason: rangOut ? `${reason} at the ringing timeout` : reason, ...base };
  }
  if (NO_ANSWER.has(code)) return { kind: 'retry', outcome: 'no_answer', reason, ...base };
  const final = { kind: 'final', livekitConfigurationError: false, reason, ...base } as const;
  if (DECLINED.has(code)) return { ...final, outcome: 'declined', trunkConfigurationError: false };
  if (INVALID_NUMBER.has(code)) return { ...final, outcome: 'invalid_number', trunkConfigurationError: false };
  if (TRUNK_AUTH.has(code)) return { ...final, outcome: 'failed', trunkConfigurationError: true };
  if (code >= SIP_SERVER_ERROR_MIN && code <= SIP_SERVER_ERROR_MAX) return { kind: 'retry', outcome: 'failed', reason, ...base };
  return { ...final, outcome: 'failed', trunkConfigurationError: false };
}

function finalFailed(reason: string, httpStatus: number | undefined, configuration: { trunk?: boolean; livekit?: boolean } = {}): DialFailure {
  return {
    kind: 'final',
    outcome: 'failed',
    trunkConfigurationError: configuration.trunk ?? false,
    livekitConfigurationError: configuration.livekit ?? false,
    reason,
    httpStatus,
  };
}

/** A LiveKit API error without a SIP status: by Twirp code (or HTTP status), then elapsed time. */
function classifyApiError(err: ServerError, reachedRingingTimeout: boolean): DialFailure {
  const code = liveKitErrorCode(err);
  const httpStatus = err.status;
  const described = describeLiveKitError(err);
  if (code === 'failed_precondition' && isTrunkConfigurationMessage(err.message)) {
    return finalFailed(`trunk configuration: ${described}`, httpStatus, { trunk: true });
  }
  if (RING_OUT_CODES.has(code) && reachedRingingTimeout) {
    return { kind: 'retry', outcome: 'no_answer', reason: `rang out (${described})`, httpStatus };
  }
  if (PLATFORM_CODES.has(code)) return { kind: 'platform', reason: described, httpStatus };
  // livekit-server's own request deadline (psrpc ErrRequestTimedOut) before the ringing timeout: a SIP server took the
  // request and did not answer in time, so its INVITE may be out and the phone ringing (the simulator's
  // request_timeout keeps the participant dialing). Dialing the attempt again at once after a back-off would ring it
  // twice: the attempt is spent, its room deleted (which ends such a call), and the call retried after the retry delay.
  if (code === 'deadline_exceeded') return { kind: 'retry', outcome: 'failed', reason: `${described} (the phone may have rung)`, httpStatus };
  if (INVALID_REQUEST_CODES.has(code)) return finalFailed(`LiveKit refused the request: ${described}`, httpStatus);
  if (LIVEKIT_CONFIGURATION_CODES.has(code)) return finalFailed(`LiveKit settings: ${described}`, httpStatus, { livekit: true });
  // The only not_found CreateSIPParticipant returns is the trunk (livekit-server ErrSIPTrunkNotFound).
  if (code === 'not_found') return finalFailed(`trunk configuration: ${described}`, httpStatus, { trunk: true });
  // canceled before the ringing timeout (the INVITE got no final answer, or the call was closed while dialing),
  // failed_precondition (a failure after the INVITE went out, which livekit/sip marks so nobody dials again at once),
  // and any code not listed: the phone may have rung, so spend the attempt and retry after the normal delay.
  return { kind: 'retry', outcome: 'failed', reason: described, httpStatus };
}

/** fetch's own failures: connection refused/reset (TypeError "fetch failed"), the SDK's request timeout. */
function classifyTransportError(err: unknown, reachedRingingTimeout: boolean): DialFailure {
  const reason = describeLiveKitError(err);
  const timedOut = err instanceof Error && err.name === 'TimeoutError';
  // The SDK waits the ringing timeout plus a margin (dialTimeout.js): by then the phone may have rung all along.
  if (timedOut && reachedRingingTimeout) {
    return { kind: 'retry', outcome: 'failed', reason: `no reply from LiveKit by the ringing timeout (${reason})` };
  }
  return { kind: 'platform', reason };
}

/**
 * Classifies a CreateSIPParticipant failure: by the far end's SIP status first (LiveKit maps SIP statuses onto
 * HTTP codes: a 429 or 403 carrying a SIP status is the callee's answer), then, without one, by the Twirp code and
 * the time the request took against the ringing timeout. The table of every shape is in README ("SIP failures").
 */
export function classifySipError(err: unknown, timing: DialTiming): DialFailure {
  const reachedRingingTimeout = timing.elapsedMs >= timing.ringingTimeoutMs - RING_OUT_TOLERANCE_MS;
  const sip = sipStatusOfError(err);
  if (sip) return classifySipStatus(sip, reachedRingingTimeout, err instanceof ServerError ? err.status : undefined);
  if (err instanceof ServerError) return classifyApiError(err, reachedRingingTimeout);
  return classifyTransportError(err, reachedRingingTimeout);
}

/** Dispatch errors that mean LiveKit is unavailable for now. */
const DISPATCH_PLATFORM_CODES: ReadonlySet<LiveKitErrorCode> = new Set([
  ...PLATFORM_CODES,
  'deadline_exceeded',
  'canceled',
  'aborted',
]);

/**
 * Classifies a CreateDispatch failure (agent_dispatch_service.go). Nothing has rung yet, so the only question is
 * whether the same request can succeed later: LiveKit unavailable (5xx, 429, timeouts, transport errors) →
 * `platform`; anything LiveKit refuses (invalid_argument such as metadata over 512 KiB, a body over 10 MiB → 413,
 * credentials or grants, an unknown route or room) → `final`.
 */
export function classifyDispatchError(err: unknown): DispatchFailure {
  const reason = describeLiveKitError(err);
  if (!(err instanceof ServerError)) return { kind: 'platform', reason };
  const code = liveKitErrorCode(err);
  const httpStatus = err.status;
  if (DISPATCH_PLATFORM_CODES.has(code)) return { kind: 'platform', reason, httpStatus };
  return {
    kind: 'final',
    outcome: 'failed',
    reason: `LiveKit refused the agent dispatch: ${reason}`,
    httpStatus,
    // not_found: the room does not exist and LiveKit's room auto-creation is off
    livekitConfigurationError: LIVEKIT_CONFIGURATION_CODES.has(code) || code === 'not_found',
  };
}
