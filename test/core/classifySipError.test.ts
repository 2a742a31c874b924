import { describe, expect, it } from 'vitest';
import { ServerError, SipCallError, TwirpError } from 'livekit-server-sdk';
import {
  classifyDispatchError,
  classifySipError,
  sipStatusOfError,
} from '../../src/core/classifySipError.js';

const RINGING_MS = 30_000;
const quick = { elapsedMs: 800, ringingTimeoutMs: RINGING_MS };
const atRingingTimeout = { elapsedMs: RINGING_MS + 5, ringingTimeoutMs: RINGING_MS };

function sipError(code: number, status: string, httpStatus: number, twirpCode: string): SipCallError {
  return SipCallError.fromServerError(
    new TwirpError('err', `twirp error`, httpStatus, twirpCode, { sip_status_code: String(code), sip_status: status }),
  );
}

/** A Twirp JSON error as the SDK builds it (statusText, msg, HTTP status, code, meta). */
function twirp(httpStatus: number, code: string, msg: string): ServerError {
  return new ServerError('error', msg, httpStatus, code, undefined);
}

/** A reply that is not a Twirp error (plain text from livekit-server's middlewares or a proxy): no code. */
function plain(httpStatus: number, text: string): ServerError {
  return new ServerError('error', text, httpStatus, undefined, undefined);
}

describe('classifySipError: the far end answered with a SIP status', () => {
  it.each([
    [486, 'Busy Here', 429, 'resource_exhausted', 'retry', 'busy'],
    [600, 'Busy Everywhere', 429, 'resource_exhausted', 'retry', 'busy'],
    [480, 'Temporarily Unavailable', 429, 'resource_exhausted', 'retry', 'no_answer'],
    [408, 'Request Timeout', 408, 'deadline_exceeded', 'retry', 'no_answer'],
    [487, 'Request Terminated', 409, 'aborted', 'retry', 'no_answer'],
    [603, 'Decline', 403, 'permission_denied', 'final', 'declined'],
    [607, 'Unwanted', 403, 'permission_denied', 'final', 'declined'],
    [608, 'Rejected', 403, 'permission_denied', 'final', 'declined'],
    [404, 'Not Found', 404, 'not_found', 'final', 'invalid_number'],
    [484, 'Address Incomplete', 400, 'invalid_argument', 'final', 'invalid_number'],
    [604, 'Does Not Exist Anywhere', 404, 'not_found', 'final', 'invalid_number'],
    [400, 'Bad Request', 400, 'invalid_argument', 'final', 'invalid_number'],
    [401, 'Unauthorized', 403, 'permission_denied', 'final', 'failed'],
    [403, 'Forbidden', 403, 'permission_denied', 'final', 'failed'],
    [407, 'Proxy Authentication Required', 401, 'unauthenticated', 'final', 'failed'],
    [503, 'Service Unavailable', 412, 'failed_precondition', 'retry', 'failed'],
    [500, 'Server Internal Error', 412, 'failed_precondition', 'retry', 'failed'],
    [488, 'Not Acceptable Here', 400, 'invalid_argument', 'final', 'failed'],
  ] as const)('maps SIP %i (%s, HTTP %i %s) to %s %s', (code, status, http, twirpCode, kind, outcome) => {
    const failure = classifySipError(sipError(code, status, http, twirpCode), quick);
    expect(failure).toMatchObject({ kind, outcome, sipStatusCode: code, sipStatus: status, httpStatus: http });
  });

  it('treats a 486 that arrives at the ringing timeout as no answer, not busy', () => {
    const failure = classifySipError(sipError(486, 'Busy Here', 429, 'resource_exhausted'), atRingingTimeout);
    expect(failure).toMatchObject({ kind: 'retry', outcome: 'no_answer', sipStatusCode: 486 });
  });

  it('flags trunk authentication failures as configuration errors', () => {
    const failure = classifySipError(sipError(407, 'Proxy Authentication Required', 401, 'unauthenticated'), quick);
    expect(failure).toMatchObject({ kind: 'final', trunkConfigurationError: true, livekitConfigurationError: false });
  });

  it('classifies by SIP status even when the HTTP code looks like a platform rate limit', () => {
    expect(classifySipError(sipError(480, 'Temporarily Unavailable', 429, 'resource_exhausted'), quick).kind).toBe('retry');
  });
});

interface NoSipRow {
  label: string;
  err: unknown;
  timing: { elapsedMs: number; ringingTimeoutMs: number };
  expected: Record<string, unknown>;
}

/**
 * Every shape CreateSIPParticipant fails with when there is no SIP status, from livekit-server pkg/service/sip.go,
 * livekit/sip pkg/sip/outbound.go + errors.go, livekit/psrpc errors.go, and the SDK's own failures.
 */
const NO_SIP_ROWS: NoSipRow[] = [
  // ring-outs: at the ringing timeout, whatever code the livekit/sip version uses
  {
    label: 'canceled "sip request timed out" at the ringing timeout (livekit/sip sipResponse)',
    err: twirp(408, 'canceled', 'twirp error unknown: sip request timed out'),
    timing: atRingingTimeout,
    expected: { kind: 'retry', outcome: 'no_answer', httpStatus: 408 },
  },
  {
    label: 'failed_precondition "context deadline exceeded" at the ringing timeout (livekit/sip#857)',
    err: twirp(412, 'failed_precondition', 'twirp error unknown: context deadline exceeded'),
    timing: atRingingTimeout,
    expected: { kind: 'retry', outcome: 'no_answer', httpStatus: 412 },
  },
  {
    label: 'deadline_exceeded at the ringing timeout (server deadline = ringing timeout)',
    err: twirp(408, 'deadline_exceeded', 'twirp error unknown: request timed out'),
    timing: atRingingTimeout,
    expected: { kind: 'retry', outcome: 'no_answer' },
  },
  // trunk configuration (no SIP status: livekit/sip answers the digest challenge itself)
  {
    label: 'failed_precondition "max auth retry attempts reached for SIP invite"',
    err: twirp(412, 'failed_precondition', 'twirp error unknown: max auth retry attempts reached for SIP invite'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', trunkConfigurationError: true, httpStatus: 412 },
  },
  {
    label: 'failed_precondition "sip server required auth, but no username or password was provided"',
    err: twirp(412, 'failed_precondition', 'twirp error unknown: sip server required auth, but no username or password was provided'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', trunkConfigurationError: true },
  },
  {
    label: 'failed_precondition "no auth header in sip invite response"',
    err: twirp(412, 'failed_precondition', 'twirp error unknown: no auth header in sip invite response'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', trunkConfigurationError: true },
  },
  {
    label: 'failed_precondition "no numbers on outbound trunk" (livekit/protocol rpc/sip.go)',
    err: twirp(412, 'failed_precondition', 'twirp error unknown: no numbers on outbound trunk'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', trunkConfigurationError: true },
  },
  {
    label: 'not_found "requested sip trunk does not exist"',
    err: twirp(404, 'not_found', 'requested sip trunk does not exist'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', trunkConfigurationError: true, livekitConfigurationError: false, httpStatus: 404 },
  },
  // requests LiveKit refuses
  {
    label: 'invalid_argument "missing sip callee number" (request validation)',
    err: twirp(400, 'invalid_argument', 'missing sip callee number'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', trunkConfigurationError: false, livekitConfigurationError: false, httpStatus: 400 },
  },
  {
    label: 'invalid_argument "invalid request URI" from the SIP node (bad number or trunk address)',
    err: twirp(400, 'invalid_argument', 'twirp error unknown: invalid request URI: number must be set'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed' },
  },
  {
    label: 'malformed (the body could not be decoded)',
    err: twirp(400, 'malformed', 'the json request could not be decoded'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed' },
  },
  {
    label: 'HTTP 413 "request body too large" (plain text, no Twirp code)',
    err: plain(413, 'request body too large'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', httpStatus: 413 },
  },
  // LiveKit settings
  {
    label: 'unauthenticated "permissions denied" (token without the SIP call grant)',
    err: twirp(401, 'unauthenticated', 'permissions denied'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', livekitConfigurationError: true, trunkConfigurationError: false },
  },
  {
    label: 'plain-text 401 from the API-key middleware (wrong key or secret)',
    err: plain(401, 'invalid API key'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', livekitConfigurationError: true },
  },
  {
    label: 'permission_denied without a SIP status',
    err: twirp(403, 'permission_denied', 'project not allowed to place SIP calls'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', livekitConfigurationError: true },
  },
  {
    label: 'bad_route (LIVEKIT_URL serves no such API)',
    err: twirp(404, 'bad_route', 'no handler for path "/twirp/livekit.SIP/CreateSIPParticipant"'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', livekitConfigurationError: true },
  },
  {
    label: 'plain-text 404 "404 page not found" (not a LiveKit server at that path)',
    err: plain(404, '404 page not found\n'),
    timing: quick,
    expected: { kind: 'final', outcome: 'failed', livekitConfigurationError: true, trunkConfigurationError: false },
  },
  // the INVITE may have gone out: spend the attempt, retry after the normal delay
  {
    label: 'canceled before the ringing timeout (transaction timed out, or the call closed while dialing)',
    err: twirp(408, 'canceled', 'twirp error unknown: transaction failed to complete (1 intermediate responses)'),
    timing: quick,
    expected: { kind: 'retry', outcome: 'failed', httpStatus: 408 },
  },
  {
    label: 'failed_precondition before the ringing timeout (a server error after the INVITE: livekit/sip afterInvite)',
    err: twirp(412, 'failed_precondition', 'twirp error unknown: write udp: connection refused'),
    timing: quick,
    expected: { kind: 'retry', outcome: 'failed', httpStatus: 412 },
  },
  {
    label: 'aborted without a SIP status',
    err: twirp(409, 'aborted', 'aborted'),
    timing: quick,
    expected: { kind: 'retry', outcome: 'failed' },
  },
  {
    label: "the SDK's own timeout (ringing timeout + 2 s) with no reply",
    err: new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    timing: { elapsedMs: RINGING_MS + 2_000, ringingTimeoutMs: RINGING_MS },
    expected: { kind: 'retry', outcome: 'failed' },
  },
  // LiveKit unavailable: nothing rang, attempt not spent
  {
    label: 'unavailable "no response from servers" (no SIP node, psrpc)',
    err: twirp(503, 'unavailable', 'twirp error unknown: no response from servers'),
    timing: quick,
    expected: { kind: 'platform', httpStatus: 503 },
  },
  {
    label: 'unavailable "cpu exhausted" (livekit/sip overloaded)',
    err: twirp(503, 'unavailable', 'twirp error unknown: cpu exhausted'),
    timing: quick,
    expected: { kind: 'platform', httpStatus: 503 },
  },
  {
    label: 'internal "sip not connected (redis required)"',
    err: twirp(500, 'internal', 'sip not connected (redis required)'),
    timing: quick,
    expected: { kind: 'platform', httpStatus: 500 },
  },
  {
    label: 'unknown (a plain Go error crossing psrpc)',
    err: twirp(500, 'unknown', 'twirp error unknown: update room failed: EOF'),
    timing: quick,
    expected: { kind: 'platform', httpStatus: 500 },
  },
  {
    label: 'resource_exhausted without a SIP status (LiveKit quota or rate limit)',
    err: twirp(429, 'resource_exhausted', 'rate limited'),
    timing: quick,
    expected: { kind: 'platform', httpStatus: 429 },
  },
  {
    label: 'deadline_exceeded before the ringing timeout (psrpc request deadline: a SIP server took it, the phone may ring)',
    err: twirp(408, 'deadline_exceeded', 'twirp error unknown: request timed out'),
    timing: quick,
    expected: { kind: 'retry', outcome: 'failed', httpStatus: 408 },
  },
  {
    label: 'a 502 page from a proxy',
    err: plain(502, '<html>Bad Gateway</html>'),
    timing: quick,
    expected: { kind: 'platform', httpStatus: 502 },
  },
  {
    label: 'an empty sip_status_code',
    err: SipCallError.fromServerError(new ServerError('x', 'y', 500, 'internal', { sip_status_code: '' })),
    timing: quick,
    expected: { kind: 'platform', httpStatus: 500 },
  },
  {
    label: 'connection refused',
    err: new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:7880') }),
    timing: quick,
    expected: { kind: 'platform' },
  },
  {
    label: "the SDK's own timeout before the ringing timeout",
    err: new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    timing: quick,
    expected: { kind: 'platform' },
  },
];

describe('classifySipError: no SIP status', () => {
  it.each(NO_SIP_ROWS)('$label', ({ err, timing, expected }) => {
    const failure = classifySipError(err, timing);
    expect(failure).toMatchObject(expected);
    expect(failure).not.toHaveProperty('sipStatusCode');
    expect(failure.reason).toEqual(expect.any(String));
  });

  it('decides a trunk auth failure by its code and LiveKit\'s words, not by the word "auth" anywhere', () => {
    // same code, different text: a server error after the INVITE, not a broken trunk
    const other = twirp(412, 'failed_precondition', 'twirp error unknown: authority unreachable');
    expect(classifySipError(other, quick)).toMatchObject({ kind: 'retry', outcome: 'failed' });
    // same text, another code: not the failed_precondition livekit/sip answers with
    const otherCode = twirp(500, 'internal', 'max auth retry attempts reached for SIP invite');
    expect(classifySipError(otherCode, quick)).toMatchObject({ kind: 'platform' });
  });

  it('counts a reply just under the ringing timeout (within the tolerance) as a ring-out', () => {
    const err = twirp(412, 'failed_precondition', 'twirp error unknown: context deadline exceeded');
    expect(classifySipError(err, { elapsedMs: RINGING_MS - 100, ringingTimeoutMs: RINGING_MS })).toMatchObject({ outcome: 'no_answer' });
    expect(classifySipError(err, { elapsedMs: RINGING_MS - 1_000, ringingTimeoutMs: RINGING_MS })).toMatchObject({ outcome: 'failed' });
  });
});

describe('sipStatusOfError', () => {
  it('reads the status from SipCallError only', () => {
    expect(sipStatusOfError(sipError(486, 'Busy Here', 429, 'resource_exhausted'))).toEqual({ code: 486, status: 'Busy Here' });
    // a ServerError from another client is not re-parsed by hand
    const raw = new ServerError('x', 'y', 429, 'resource_exhausted', { sip_status_code: '486', sip_status: 'Busy Here' });
    expect(sipStatusOfError(raw)).toBeUndefined();
    expect(sipStatusOfError(SipCallError.fromServerError(new ServerError('x', 'y', 500, 'internal', { sip_status_code: 'abc' })))).toBeUndefined();
    expect(sipStatusOfError(new Error('boom'))).toBeUndefined();
  });
});

describe('classifyDispatchError', () => {
  it.each([
    ['metadata over 512 KiB: invalid_argument "metadata size exceeds limits"', twirp(400, 'invalid_argument', 'metadata size exceeds limits'), false, 400],
    ['attributes over 64 KiB: invalid_argument', twirp(400, 'invalid_argument', 'attribute size exceeds limits'), false, 400],
    ['a body over 10 MiB: plain-text 413', plain(413, 'request body too large'), false, 413],
    ['room name over 256 characters: invalid_argument', twirp(400, 'invalid_argument', 'room name length exceeds limits'), false, 400],
    ['a token without roomAdmin: unauthenticated', twirp(401, 'unauthenticated', 'permissions denied'), true, 401],
    ['a wrong API secret: plain-text 401', plain(401, 'invalid token'), true, 401],
    ['permission_denied', twirp(403, 'permission_denied', 'no permissions'), true, 403],
    ['a room that does not exist with auto-create off: not_found', twirp(404, 'not_found', 'requested room does not exist'), true, 404],
  ])('ends the call for %s', (_label, err, livekitConfigurationError, httpStatus) => {
    expect(classifyDispatchError(err)).toMatchObject({ kind: 'final', outcome: 'failed', livekitConfigurationError, httpStatus });
  });

  it.each([
    ['unavailable', twirp(503, 'unavailable', 'twirp error unknown: no response from servers'), 503],
    ['internal', twirp(500, 'internal', 'could not lock room'), 500],
    ['a 429 quota', twirp(429, 'resource_exhausted', 'rate limited'), 429],
    ['deadline_exceeded', twirp(408, 'deadline_exceeded', 'twirp error unknown: request timed out'), 408],
    ['a 504 page from a proxy', plain(504, 'Gateway Timeout'), 504],
  ])('backs off on %s', (_label, err, httpStatus) => {
    expect(classifyDispatchError(err)).toMatchObject({ kind: 'platform', httpStatus });
  });

  it('backs off on transport errors', () => {
    const refused = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:7880') });
    expect(classifyDispatchError(refused)).toMatchObject({ kind: 'platform', reason: expect.stringContaining('ECONNREFUSED') });
  });
});
