/**
 * Error answers of the HTTP API as RFC 9457 problem details (`application/problem+json`): every refused request gets
 * one, with a `type` URI naming the kind of problem, the HTTP `status`, a short `title` and a `detail` for the person
 * reading it. Validation problems add `errors`, one `{pointer, detail}` per bad field (RFC 9457 §3's example shape;
 * `pointer` is a JSON Pointer, RFC 6901, into the request body, or `#query/<name>`, `#path/<name>`, `#header/<name>`).
 */
import { z } from 'zod';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The kinds of problem the API answers with; `type` is `urn:dialer:problem:<kind>`. */
export const PROBLEM_KINDS = {
  'invalid-request': { status: 400, title: 'The request is not valid' },
  unauthorized: { status: 401, title: 'No valid bearer token' },
  forbidden: { status: 403, title: 'The token lacks a scope this route needs' },
  'not-found': { status: 404, title: 'Not found' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'not-acceptable': { status: 406, title: 'No acceptable representation' },
  'idempotency-key-reused': { status: 409, title: 'The Idempotency-Key was used with another request' },
  'key-conflict': { status: 409, title: 'The key already names another call' },
  'call-not-cancelable': { status: 409, title: 'The call cannot be canceled any more' },
  'call-not-movable': { status: 409, title: 'The call cannot be moved to another time' },
  'campaign-exists': { status: 409, title: 'A campaign with this id exists already' },
  'campaign-state': { status: 409, title: 'The campaign is in a state that does not allow this' },
  'body-too-large': { status: 413, title: 'The request body is too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'invalid-call': { status: 422, title: 'The call cannot be enqueued' },
  'invalid-move': { status: 422, title: 'The call cannot be moved to that time' },
  'reserved-key': { status: 422, title: 'The body holds a key that is never accepted (__proto__, constructor.prototype)' },
  'rate-limited': { status: 429, title: 'Too many requests for this token' },
  'auth-rate-limited': { status: 429, title: 'Too many failed authentications from this address' },
  internal: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'A service the API needs is unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;
export type ProblemKind = keyof typeof PROBLEM_KINDS;

export const PROBLEM_TYPE_PREFIX = 'urn:dialer:problem:';

/** One bad field of a request. */
export const fieldErrorSchema = z.object({
  /** JSON Pointer into the body (`/calls/3/phone_number`), or `#query/<name>`, `#path/<name>`, `#header/<name>`. */
  pointer: z.string(),
  detail: z.string(),
});
export type FieldError = z.infer<typeof fieldErrorSchema>;

/** The body of every 4xx/5xx answer (RFC 9457). */
export const problemSchema = z.object({
  type: z.string().describe('urn:dialer:problem:<kind>, e.g. urn:dialer:problem:invalid-request'),
  title: z.string(),
  status: z.number().int().min(400).max(599),
  detail: z.string(),
  /** The request path the problem occurred on. */
  instance: z.string().optional(),
  errors: z.array(fieldErrorSchema).optional(),
  /** For `call-not-cancelable`: the call's state or outcome. */
  state: z.string().optional(),
  /** For `call-not-cancelable` of a call ringing or connected: the cancel is noted, and the call is not tried again. */
  cancel_requested: z.boolean().optional(),
  /** For `key-conflict` and `idempotency-key-reused`: the call the key already names, when known. */
  call_id: z.string().optional(),
});
export type Problem = z.infer<typeof problemSchema>;

/** Optional members of a problem besides type/title/status/detail. */
export type ProblemExtras = Pick<Problem, 'errors' | 'state' | 'cancel_requested' | 'call_id'>;

/** Thrown by routes and hooks; the server's error handler turns it into a problem+json answer. */
export class ApiProblem extends Error {
  override readonly name = 'ApiProblem';
  readonly status: number;
  /** Fastify reads `statusCode` from thrown errors (e.g. the rate limiter's). */
  readonly statusCode: number;

  constructor(
    readonly kind: ProblemKind,
    readonly detail: string,
    readonly extras: ProblemExtras = {},
    /** Extra answer headers, e.g. WWW-Authenticate on a 401, Allow on a 405. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail);
    this.status = PROBLEM_KINDS[kind].status;
    this.statusCode = this.status;
  }

  /** The problem document for a request to `instance`. */
  toProblem(instance: string): Problem {
    return { type: `${PROBLEM_TYPE_PREFIX}${this.kind}`, title: PROBLEM_KINDS[this.kind].title, status: this.status, detail: this.detail, instance, ...this.extras };
  }
}

/** Turns zod issues into field errors; `at` is where the parsed value came from (`body`, `query`, `path`, `header`). */
export function fieldErrors(issues: readonly z.core.$ZodIssue[], at: 'body' | 'query' | 'path' | 'header'): FieldError[] {
  return issues.flatMap((issue) => {
    // an unknown field is reported at its own pointer, so the client sees exactly which one to drop
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
    const detail = issue.code === 'unrecognized_keys' ? 'unknown field: not part of this request' : issue.message;
    return keys.map((path) => ({ pointer: pointerOf(path, at), detail }));
  });
}

/** RFC 6901 escaping of one reference token. */
const escapeToken = (token: PropertyKey) => String(token).replace(/~/g, '~0').replace(/\//g, '~1');

/** The pointer of a field at `path` of the body, or of a query, path or header parameter (`#query/<name>`). */
export function pointerOf(path: readonly PropertyKey[], at: 'body' | 'query' | 'path' | 'header'): string {
  const pointer = path.map((p) => `/${escapeToken(p)}`).join('');
  return at === 'body' ? pointer : `#${at}${pointer || '/'}`;
}

/** A one-line summary of field errors for `detail`. */
export function summarize(errors: readonly FieldError[], max = 3): string {
  const shown = errors.slice(0, max).map((e) => `${e.pointer || '/'}: ${e.detail}`);
  const more = errors.length > max ? ` (and ${errors.length - max} more)` : '';
  return `${shown.join('; ')}${more}`;
}
