/**
 * One API route as data: method, path, scope, the zod schemas of its parameters, body and answers, and its handler.
 * The server registers routes from these (checking every input against the schemas first) and the OpenAPI document is
 * generated from the same objects, so a route cannot take or answer anything its document does not describe.
 */
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ApiProblem, fieldErrors, pointerOf, summarize } from './problem.js';
import type { Scope } from './tokens.js';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** What a handler answers: status, body (JSON unless `contentType` says otherwise), extra headers. */
export interface RouteAnswer {
  status: number;
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

/** A documented answer of a route. */
export interface ResponseDoc {
  description: string;
  /** JSON body schema; answers without a schema have no JSON body (or the `content` below). */
  schema?: z.ZodType;
  /** Other media types the answer may have (e.g. text/csv), with a JSON Schema of their text. */
  content?: Record<string, { schema: Record<string, unknown> }>;
  headers?: Record<string, { description: string; schema: Record<string, unknown> }>;
}

/** A documented request header of a route. */
export interface HeaderDoc {
  name: string;
  schema: z.ZodType<string>;
  description: string;
}

/** The documented parts of a route (what the OpenAPI document shows). */
export interface RouteDoc {
  method: HttpMethod;
  /** OpenAPI form: `/v1/calls/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** The token scope the route needs; undefined: no token needed (health checks, the document itself). */
  scope?: Scope;
  params?: z.ZodObject;
  query?: z.ZodObject;
  /**
   * Body as documented (`schema`) and as the route checks it first (`check`: the same schema, or one that leaves parts
   * to the handler, as the batch route leaves its rows); at most `maxBytes` (413 above).
   */
  body?: { schema: z.ZodType; check: z.ZodType; description: string; maxBytes: number };
  headers?: readonly HeaderDoc[];
  /** Success and route-specific error answers; the common problems (400, 401, 403, 413 …) are added by openapi.ts. */
  responses: Readonly<Record<number, ResponseDoc>>;
}

/** Checked inputs of a handler. */
export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** Request headers (lower-case names), for the documented ones the route reads itself. */
  header(name: string): string | undefined;
  request: FastifyRequest;
}

/** A route ready to register: its document and a handler taking unchecked input. */
export interface Route {
  doc: RouteDoc;
  handle(request: FastifyRequest): Promise<RouteAnswer>;
}

/** Checks `value` against `schema`; a 400 problem listing every bad field otherwise. */
export function check<T extends z.ZodType>(schema: T, value: unknown, at: 'body' | 'query' | 'path' | 'header'): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const errors = fieldErrors(parsed.error.issues, at);
  throw new ApiProblem('invalid-request', summarize(errors), { errors });
}

const EMPTY = Object.freeze({});

/**
 * Refuses query parameters a route does not take (every route: one without a query schema takes none), naming each,
 * so a misspelt or unsupported parameter is never silently ignored. Checked before the route's own schema.
 */
function refuseUnknownQuery(schema: z.ZodObject | undefined, query: unknown): void {
  if (query === null || typeof query !== 'object') return;
  const takes = schema ? Object.keys(schema.shape) : [];
  const unknown = Object.keys(query).filter((name) => !takes.includes(name));
  if (unknown.length === 0) return;
  const plural = unknown.length > 1 ? 's' : '';
  throw new ApiProblem('invalid-request', `unknown query parameter${plural}: ${unknown.join(', ')} (this route takes ${takes.length ? takes.join(', ') : 'none'})`, {
    errors: unknown.map((name) => ({ pointer: pointerOf([name], 'query'), detail: 'unknown query parameter' })),
  });
}

/**
 * Builds a route: its handler gets params, query and body already checked against the route's schemas (a 400 problem
 * names every bad field otherwise), typed by them.
 */
export function defineRoute<
  P extends z.ZodObject = z.ZodObject<Record<string, never>>,
  Q extends z.ZodObject = z.ZodObject<Record<string, never>>,
  B extends z.ZodType = z.ZodUndefined,
>(
  doc: RouteDoc & { params?: P; query?: Q; body?: { check: B } },
  handler: (input: RouteInput<z.infer<P>, z.infer<Q>, z.infer<B>>) => Promise<RouteAnswer>,
): Route {
  return {
    doc,
    async handle(request) {
      const params = (doc.params ? check(doc.params, request.params ?? EMPTY, 'path') : EMPTY) as z.infer<P>;
      refuseUnknownQuery(doc.query, request.query);
      const query = (doc.query ? check(doc.query, request.query ?? EMPTY, 'query') : EMPTY) as z.infer<Q>;
      if (!doc.body && request.body !== undefined && request.body !== null) {
        throw new ApiProblem('invalid-request', 'this route takes no request body');
      }
      if (doc.body && request.body === undefined) throw new ApiProblem('invalid-request', 'the body is empty: send a JSON object');
      const body = (doc.body ? check(doc.body.check, request.body, 'body') : undefined) as z.infer<B>;
      const header = (name: string) => {
        const value = request.headers[name.toLowerCase()];
        return Array.isArray(value) ? value.join(', ') : value;
      };
      return handler({ params, query, body, header, request });
    },
  };
}
