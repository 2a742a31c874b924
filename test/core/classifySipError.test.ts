import { describe, expect, it } from 'vitest';
import { ServerError, SipCallError, TwirpError } from 'livekit-server-sdk';
import { classifySipError } from '../../src/core/classifySipError.js';

const RINGING_MS = 30_000;
const quick = { elapsedMs: 800, ringingTimeoutMs: RINGING_MS };

function sipError(code: number, status: string, httpStatus: number, twirpCode: string): SipCallError {
  return SipCallError.fromServerError(
    new TwirpError('err', `twirp error`, httpStatus, twirpCode, { sip_status_code: String(code), sip_status: status }),
  );
}

describe('classifySipError', () => {
  it.each([
    [486, 'Busy Here', 429, 'resource_exhausted', 'retry', 'busy'],
    [600, 'Busy Everywhere', 429, 'resource_exhausted', 'retry', 'busy'],
    [480, 'Temporarily Unavailable', 429, 'resource_exhausted', 'retry', 'no_answer'],
    [408, 'Request Timeout', 504, 'deadline_exceeded', 'retry', 'no_answer'],
    [487, 'Request Terminated', 499, 'canceled', 'retry', 'no_answer'],
    [603, 'Decline', 403, 'permission_denied', 'final', 'declined'],
    [607, 'Unwanted', 403, 'permission_denied', 'final', 'declined'],
    [608, 'Rejected', 403, 'permission_denied', 'final', 'declined'],
    [404, 'Not Found', 404, 'not_found', 'final', 'invalid_number'],
    [484, 'Address Incomplete', 400, 'invalid_argument', 'final', 'invalid_number'],
    [604, 'Does Not Exist Anywhere', 404, 'not_found', 'final', 'invalid_number'],
    [400, 'Bad Request', 400, 'invalid_argument', 'final', 'invalid_number'],
    [401, 'Unauthorized', 401, 'unauthenticated', 'final', 'failed'],
    [403, 'Forbidden', 403, 'permission_denied', 'final', 'failed'],
    [407, 'Proxy Authentication Required', 401, 'unauthenticated', 'final', 'failed'],
    [503, 'Service Unavailable', 503, 'unavailable', 'retry', 'failed'],
    [500, 'Server Internal Error', 500, 'internal', 'retry', 'failed'],
  ] as const)('maps SIP %i (%s) to %s %s', (code, status, http, twirp, kind, outcome) => {
    const failure = classifySipError(sipError(code, status, http, twirp), quick);
    expect(failure).toMatchObject({ kind, outcome, sipStatusCode: code, sipStatus: status });
  });

  it('treats a 486 that arrives at the ringing timeout as no answer, not busy', () => {
    const failure = classifySipError(sipError(486, 'Busy Here', 429, 'resource_exhausted'), {
      elapsedMs: RINGING_MS + 5,
      ringingTimeoutMs: RINGING_MS,
    });
    expect(failure).toMatchObject({ kind: 'retry', outcome: 'no_answer', sipStatusCode: 486 });
  });

  it('treats LiveKit\'s own "sip request timed out" at the ringing timeout as no answer', () => {
    const err = new TwirpError('Request Timeout', 'sip request timed out', 408, 'canceled', undefined);
    expect(classifySipError(err, { elapsedMs: RINGING_MS + 10, ringingTimeoutMs: RINGING_MS })).toMatchObject({
      kind: 'retry',
      outcome: 'no_answer',
    });
    // the same code long before the ringing timeout says nothing about the callee
    expect(classifySipError(err, quick)).toMatchObject({ kind: 'platform', httpStatus: 408 });
  });

  it('flags trunk authentication failures as configuration errors', () => {
    const failure = classifySipError(sipError(407, 'Proxy Authentication Required', 401, 'unauthenticated'), quick);
    expect(failure).toMatchObject({ kind: 'final', trunkConfigurationError: true });
  });

  it('classifies by SIP status even when the HTTP code looks like a platform rate limit', () => {
    expect(classifySipError(sipError(480, 'Temporarily Unavailable', 429, 'resource_exhausted'), quick).kind).toBe('retry');
  });

  it.each([
    ['an API 429 without SIP status', new ServerError('Too Many Requests', 'rate limited', 429, 'resource_exhausted', undefined), 429],
    ['an API 503 without SIP status', new ServerError('Service Unavailable', 'unavailable', 503, 'unavailable', {}), 503],
    ['an empty sip_status_code', new ServerError('x', 'y', 500, 'internal', { sip_status_code: '' }), 500],
  ])('treats %s as platform trouble', (_label, err, httpStatus) => {
    expect(classifySipError(err, quick)).toMatchObject({ kind: 'platform', httpStatus });
  });

  it('treats connection refused and timeouts as platform trouble', () => {
    const refused = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:7880') });
    expect(classifySipError(refused, quick)).toMatchObject({ kind: 'platform' });
    expect(classifySipError(new DOMException('The operation was aborted due to timeout', 'TimeoutError'), quick)).toMatchObject({
      kind: 'platform',
    });
  });
});
