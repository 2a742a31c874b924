/**
 * Twirp error codes, their HTTP statuses, and LiveKit's SIP status → Twirp code table.
 *
 * Sources (read, not copied):
 * - twitchtv/twirp `errors.go` `ServerHTTPStatusFromErrorCode` (code → HTTP status) and the generated
 *   `writeError`/`marshalErrorToJSON` (body `{"code","msg","meta"}`, `Content-Type: application/json`).
 * - livekit/protocol `livekit/sip.go` `sipCodeToGRPCCode` and `SIPStatus.GRPCStatus()` (SIP → gRPC code, with
 *   fallbacks 4xx → invalid_argument, 5xx → failed_precondition, 6xx → invalid_argument), `TwirpErrorMeta()`
 *   (`sip_status_code`, `sip_status`) and `utils/xtwirp/errors.go` (`error_details` = base64 google.rpc.Status).
 * - livekit/psrpc `errors.go` + xtwirp `ToError`: a psrpc error crossing the Twirp boundary gets its message
 *   prefixed with "twirp error unknown: " (it is first wrapped as an Unknown twirp error, then re-coded).
 * - livekit/sip `pkg/sip/errors.go` `classifyInviteError` (SIP status → participant DisconnectReason).
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf';
import { SIPStatus } from '@livekit/protocol';

export type TwirpCode =
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
  | 'data_loss';

/** twirp `ServerHTTPStatusFromErrorCode`. Note deadline_exceeded and canceled are 408 in Twirp, not 504. */
export const TWIRP_HTTP_STATUS: Readonly<Record<TwirpCode, number>> = {
  canceled: 408,
  unknown: 500,
  invalid_argument: 400,
  malformed: 400,
  deadline_exceeded: 408,
  not_found: 404,
  bad_route: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  resource_exhausted: 429,
  failed_precondition: 412,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
};

/** gRPC numeric codes, used inside the `error_details` google.rpc.Status LiveKit attaches to SIP failures. */
const GRPC_CODE: Readonly<Record<TwirpCode, number>> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  malformed: 3,
  deadline_exceeded: 4,
  not_found: 5,
  bad_route: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  data_loss: 15,
  unauthenticated: 16,
};

/** livekit/protocol `sipCodeToGRPCCode`, expressed as Twirp codes (xtwirp `ErrorCodeFromGRPC`). */
export const SIP_STATUS_TWIRP_CODE: Readonly<Record<number, TwirpCode>> = {
  300: 'invalid_argument',
  301: 'not_found',
  302: 'not_found',
  305: 'invalid_argument',
  380: 'invalid_argument',
  400: 'invalid_argument',
  401: 'permission_denied',
  402: 'permission_denied',
  403: 'permission_denied',
  404: 'not_found',
  405: 'invalid_argument',
  406: 'invalid_argument',
  407: 'unauthenticated',
  408: 'deadline_exceeded',
  409: 'failed_precondition',
  410: 'not_found',
  411: 'invalid_argument',
  412: 'failed_precondition',
  413: 'invalid_argument',
  414: 'invalid_argument',
  415: 'invalid_argument',
  416: 'out_of_range',
  417: 'invalid_argument',
  420: 'invalid_argument',
  421: 'invalid_argument',
  422: 'invalid_argument',
  423: 'invalid_argument',
  424: 'invalid_argument',
  425: 'invalid_argument',
  428: 'unauthenticated',
  429: 'invalid_argument',
  430: 'invalid_argument',
  433: 'permission_denied',
  436: 'unauthenticated',
  437: 'unauthenticated',
  438: 'unauthenticated',
  439: 'invalid_argument',
  440: 'resource_exhausted',
  469: 'invalid_argument',
  470: 'permission_denied',
  480: 'resource_exhausted',
  481: 'not_found',
  482: 'failed_precondition',
  483: 'failed_precondition',
  484: 'invalid_argument',
  485: 'invalid_argument',
  486: 'resource_exhausted',
  487: 'aborted',
  488: 'invalid_argument',
  489: 'invalid_argument',
  491: 'aborted',
  493: 'invalid_argument',
  494: 'unauthenticated',
  500: 'failed_precondition',
  501: 'failed_precondition',
  502: 'failed_precondition',
  503: 'failed_precondition',
  504: 'deadline_exceeded',
  505: 'invalid_argument',
  513: 'invalid_argument',
  600: 'resource_exhausted',
  603: 'permission_denied',
  604: 'not_found',
  606: 'invalid_argument',
  607: 'permission_denied',
  608: 'permission_denied',
};

const SIP_CLASS_SIZE = 100;

/** `SIPStatus.GRPCStatus()`: table first, then the class fallbacks LiveKit uses. */
export function sipStatusToTwirpCode(sipStatusCode: number): TwirpCode {
  const mapped = SIP_STATUS_TWIRP_CODE[sipStatusCode];
  if (mapped) return mapped;
  const sipClass = Math.floor(sipStatusCode / SIP_CLASS_SIZE);
  if (sipClass === 5) return 'failed_precondition'; // 5xx from the remote server
  if (sipClass === 4 || sipClass === 6 || sipClass === 3) return 'invalid_argument';
  return 'unknown'; // 1xx/2xx never fail a call
}

/** RFC 3261 / 6665 / 8197 reason phrases, used as `sip_status` when a scenario gives none. */
export const SIP_REASON_PHRASES: Readonly<Record<number, string>> = {
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Moved Temporarily',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  410: 'Gone',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  421: 'Extension Required',
  423: 'Interval Too Brief',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  484: 'Address Incomplete',
  485: 'Ambiguous',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  491: 'Request Pending',
  493: 'Undecipherable',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  505: 'Version Not Supported',
  513: 'Message Too Large',
  600: 'Busy Everywhere',
  603: 'Decline',
  604: 'Does Not Exist Anywhere',
  606: 'Not Acceptable',
  607: 'Unwanted',
  608: 'Rejected',
};

export function sipReasonPhrase(sipStatusCode: number): string {
  return SIP_REASON_PHRASES[sipStatusCode] ?? `Status ${sipStatusCode}`;
}

/** Participant DisconnectReason names (livekit_models.proto), as ParticipantInfo JSON spells them. */
export type DisconnectReasonName =
  | 'UNKNOWN_REASON'
  | 'CLIENT_INITIATED'
  | 'DUPLICATE_IDENTITY'
  | 'SERVER_SHUTDOWN'
  | 'PARTICIPANT_REMOVED'
  | 'ROOM_DELETED'
  | 'USER_UNAVAILABLE'
  | 'USER_REJECTED'
  | 'SIP_TRUNK_FAILURE';

/** livekit/sip `classifyInviteError`: how a failed INVITE closes the SIP participant. */
export function disconnectReasonForSipStatus(sipStatusCode: number): DisconnectReasonName {
  switch (sipStatusCode) {
    case 401:
    case 403:
    case 407:
    case 486:
    case 488:
      return 'USER_REJECTED';
    case 404:
    case 408:
    case 480:
      return 'USER_UNAVAILABLE';
  }
  const sipClass = Math.floor(sipStatusCode / SIP_CLASS_SIZE);
  if (sipClass === 5) return 'SIP_TRUNK_FAILURE';
  if (sipClass === 6) return 'USER_REJECTED';
  return 'USER_UNAVAILABLE';
}

/** The prefix a psrpc error's message gains when LiveKit converts it to a Twirp error (xtwirp `ToError`). */
export const PSRPC_MESSAGE_PREFIX = 'twirp error unknown: ';

export type TwirpMeta = Record<string, string>;

/** A Twirp error the server writes as `{"code","msg","meta"}` with the HTTP status Twirp uses for its code. */
export class TwirpError extends Error {
  readonly code: TwirpCode;
  readonly meta: TwirpMeta | undefined;

  constructor(code: TwirpCode, msg: string, meta?: TwirpMeta) {
    super(msg);
    this.name = 'TwirpError';
    this.code = code;
    this.meta = meta;
  }

  get httpStatus(): number {
    return TWIRP_HTTP_STATUS[this.code];
  }

  get sipStatusCode(): number | undefined {
    const raw = this.meta?.sip_status_code;
    return raw === undefined ? undefined : Number(raw);
  }

  get sipStatus(): string | undefined {
    return this.meta?.sip_status;
  }

  /** The JSON body, as twirp's `marshalErrorToJSON` writes it (meta omitted when empty). */
  toBody(): { code: TwirpCode; msg: string; meta?: TwirpMeta } {
    return this.meta && Object.keys(this.meta).length > 0
      ? { code: this.code, msg: this.message, meta: this.meta }
      : { code: this.code, msg: this.message };
  }
}

/** An error LiveKit raises itself as a twirp error (message as is). */
export function twirpError(code: TwirpCode, msg: string, meta?: TwirpMeta): TwirpError {
  return new TwirpError(code, msg, meta);
}

/** An error LiveKit raises as a psrpc error, which reaches the client with the "twirp error unknown: " prefix. */
export function psrpcError(code: TwirpCode, msg: string, meta?: TwirpMeta): TwirpError {
  return new TwirpError(code, PSRPC_MESSAGE_PREFIX + msg, meta);
}

/** How livekit/sip words the failed INVITE: these statuses go through the "INVITE failed" branch. */
const INVITE_FAILED_STATUSES: ReadonlySet<number> = new Set([400, 404, 480, 486, 488]);

/** Where the SIP failure came from, which decides the wording of LiveKit's message. */
export type SipFailureSource = 'invite' | 'transfer';

/**
 * The error LiveKit returns when the far end answers a call (or a REFER) with a final SIP failure status:
 * `ApplySIPStatus` picks the code from the SIP status, meta carries `sip_status_code`/`sip_status`, plus
 * `error_details` (base64 google.rpc.Status with the livekit.SIPStatus detail).
 */
export function sipFailureError(sipStatusCode: number, reason: string, source: SipFailureSource = 'invite'): TwirpError {
  const code = sipStatusToTwirpCode(sipStatusCode);
  const statusText = `sip status: ${sipStatusCode}: ${reason}`;
  let inner: string;
  if (source === 'transfer') inner = statusText; // the REFER/NOTIFY status itself
  else if (INVITE_FAILED_STATUSES.has(sipStatusCode)) inner = `INVITE failed: ${statusText}`;
  else inner = `unexpected status from INVITE response: ${statusText}`;
  const meta: TwirpMeta = {
    sip_status_code: String(sipStatusCode),
    sip_status: reason,
    error_details: encodeErrorDetails(code, inner, sipStatusCode, reason),
  };
  return psrpcError(code, inner, meta);
}

const STATUS_FIELD_CODE = 1;
const STATUS_FIELD_MESSAGE = 2;
const STATUS_FIELD_DETAILS = 3;
const ANY_FIELD_TYPE_URL = 1;
const ANY_FIELD_VALUE = 2;
const SIP_STATUS_TYPE_URL = 'type.googleapis.com/livekit.SIPStatus';

/** base64(google.rpc.Status{code, message, details: [Any(livekit.SIPStatus)]}), as xtwirp `WithDetailsFromStatus`. */
function encodeErrorDetails(code: TwirpCode, message: string, sipStatusCode: number, reason: string): string {
  const sipStatus = new SIPStatus({ code: sipStatusCode, status: reason }).toBinary();
  const any = new BinaryWriter()
    .tag(ANY_FIELD_TYPE_URL, WireType.LengthDelimited)
    .string(SIP_STATUS_TYPE_URL)
    .tag(ANY_FIELD_VALUE, WireType.LengthDelimited)
    .bytes(sipStatus)
    .finish();
  const status = new BinaryWriter()
    .tag(STATUS_FIELD_CODE, WireType.Varint)
    .int32(GRPC_CODE[code])
    .tag(STATUS_FIELD_MESSAGE, WireType.LengthDelimited)
    .string(message)
    .tag(STATUS_FIELD_DETAILS, WireType.LengthDelimited)
    .bytes(any)
    .finish();
  return Buffer.from(status).toString('base64');
}

/** Messages LiveKit uses, gathered so handlers and tests agree on them. */
export const LIVEKIT_MESSAGES = {
  permissionDenied: 'permissions denied',
  roomNotFound: 'requested room does not exist',
  participantNotFound: 'participant does not exist',
  trunkNotFound: 'requested sip trunk does not exist',
  dispatchRuleNotFound: 'requested sip dispatch rule does not exist',
  dispatchNotFound: 'dispatch ID not found',
  noNumbersOnTrunk: 'no numbers on outbound trunk',
  noResponseFromServers: 'no response from servers',
  requestTimedOut: 'request timed out',
  sipRequestTimedOut: 'sip request timed out',
  authMissingCredentials: 'sip server required auth, but no username or password was provided',
  authMaxRetry: 'max auth retry attempts reached for SIP invite',
  /** livekit/sip pkg/sip/protocol.go `ErrAuthNoHeader`: a 401/407 without its challenge header. */
  authNoHeader: 'no auth header in sip invite response',
  /** Go's `context.DeadlineExceeded` text: a ring-out that races an answer (livekit/sip#857). */
  contextDeadlineExceeded: 'context deadline exceeded',
  /** livekit-server pkg/service/errors.go `ErrMetadataExceedsLimits` / `ErrAttributeExceedsLimits`. */
  metadataExceedsLimits: 'metadata size exceeds limits',
  attributesExceedLimits: 'attribute size exceeds limits',
  /** livekit-server pkg/service/utils.go `ErrRequestBodyTooLarge` (plain text, HTTP 413). */
  requestBodyTooLarge: 'request body too large',
  noSipSession: 'no SIP session associated with participant',
  sameRoom: 'destination room cannot be the same as source room',
  serviceShuttingDown: 'service shutting down',
  transferNotEstablished: "can't transfer non established call",
  referCanceled: 'refer canceled',
} as const;
