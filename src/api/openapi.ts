/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the routes' own zod schemas (route.ts, schemas.ts) with
 * zod's `z.toJSONSchema` (JSON Schema 2020-12, the dialect OpenAPI 3.1 uses): named schemas become
 * `components.schemas`, and every operation lists its parameters, body, answers and the problems it can answer with.
 */
import { z } from 'zod';
import { PROBLEM_CONTENT_TYPE } from './problem.js';
import type { HeaderDoc, ResponseDoc, Route, RouteDoc } from './route.js';
import { COMPONENT_IDS } from './schemas.js';

type JsonSchema = Record<string, unknown>;

const COMPONENT_REF = (id: string) => `#/components/schemas/${id}`;
const PROBLEM_REF = { $ref: COMPONENT_REF('Problem') };

const TO_JSON_SCHEMA = { target: 'draft-2020-12', unrepresentable: 'any', uri: COMPONENT_REF } as const;

/** Points `#/$defs/<id>` refs (how zod refers to a named schema inside a single conversion) at the components. */
function rebaseRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rebaseRefs);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/') ? COMPONENT_REF(v.slice('#/$defs/'.length)) : rebaseRefs(v);
  }
  return out;
}

/** Drops what a schema inside an OpenAPI document should not carry (`$schema`; `$id`, which would rebase refs; `$defs`). */
function strip(json: JsonSchema): JsonSchema {
  const { $schema: _schema, $id: _id, $defs: _defs, ...rest } = json;
  return rest;
}

/** JSON Schema of one zod schema; named schemas inside it (and itself, when named) are refs to the components. */
function schemaOf(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, TO_JSON_SCHEMA) as JsonSchema;
  for (const id of Object.keys((json.$defs as JsonSchema | undefined) ?? {})) {
    if (!COMPONENT_IDS.has(id)) throw new Error(`openapi: schema ${id} is reused but not named in schemas.ts`);
  }
  return rebaseRefs(strip(json)) as JsonSchema;
}

/** Every named schema of schemas.ts, as `components.schemas`. */
function components(): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(z.globalRegistry, TO_JSON_SCHEMA);
  const out: Record<string, JsonSchema> = {};
  for (const id of COMPONENT_IDS) {
    const schema = schemas[id];
    if (!schema) throw new Error(`openapi: component ${id} is missing from zod's registry`);
    out[id] = strip(schema as JsonSchema);
  }
  return out;
}

function parameters(doc: RouteDoc): JsonSchema[] {
  const list: JsonSchema[] = [];
  const fromObject = (object: z.ZodObject | undefined, where: 'path' | 'query') => {
    if (!object) return;
    for (const [name, field] of Object.entries(object.shape)) {
      const schema = field as z.ZodType;
      const optional = schema.safeParse(undefined).success;
      const json = schemaOf(schema);
      const { description, ...rest } = json;
      list.push({ name, in: where, required: where === 'path' || !optional, ...(typeof description === 'string' ? { description } : {}), schema: rest });
    }
  };
  fromObject(doc.params, 'path');
  fromObject(doc.query, 'query');
  for (const header of doc.headers ?? []) list.push(headerParameter(header));
  return list;
}

function headerParameter(header: HeaderDoc): JsonSchema {
  const { description: _d, ...schema } = schemaOf(header.schema);
  return { name: header.name, in: 'header', required: false, description: header.description, schema };
}

function problem(description: string): JsonSchema {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: PROBLEM_REF } } };
}

function response(doc: ResponseDoc): JsonSchema {
  const content: Record<string, JsonSchema> = {};
  if (doc.schema) content['application/json'] = { schema: schemaOf(doc.schema) };
  for (const [type, media] of Object.entries(doc.content ?? {})) content[type] = { schema: media.schema };
  return {
    description: doc.description,
    ...(doc.headers ? { headers: doc.headers } : {}),
    ...(Object.keys(content).length ? { content } : {}),
  };
}

const RATE_LIMIT_HEADERS = {
  'x-ratelimit-limit': { description: 'requests allowed per window for this token', schema: { type: 'integer' } },
  'x-ratelimit-remaining': { description: 'requests left in this window', schema: { type: 'integer' } },
  'x-ratelimit-reset': { description: 'seconds until the window resets', schema: { type: 'integer' } },
};

/** The problems every route of a kind may answer with, besides its own. */
function commonProblems(doc: RouteDoc): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {};
  // every route refuses query parameters it does not take (route.ts), so every route may answer 400
  out['400'] = problem(
    doc.params || doc.query || doc.body || doc.headers
      ? 'Malformed request: bad JSON, a wrong type, an unknown field or query parameter (errors[] names each)'
      : 'A query parameter this route does not take (errors[] names each)',
  );
  if (doc.scope) {
    out['401'] = problem('No bearer token, or one that is not configured (WWW-Authenticate: Bearer)');
    out['403'] = problem(`The token lacks the \`${doc.scope}\` scope`);
    out['429'] = {
      ...problem(
        'Too many requests for this token in the current window (`rate-limited`), or too many failed authentications from ' +
          'this address (`auth-rate-limited`); Retry-After says when to retry',
      ),
      headers: { 'retry-after': { description: 'seconds', schema: { type: 'integer' } }, ...RATE_LIMIT_HEADERS },
    };
  }
  if (doc.body) {
    out['413'] = problem(`The body is over ${doc.body.maxBytes} bytes`);
    out['415'] = problem('The body is not application/json');
    out['422'] = problem('The body holds a key that is never accepted: `__proto__` or `constructor.prototype`, at any depth (reserved-key; errors[] points at each)');
  }
  out['500'] = problem('An unexpected error (logged with the request id)');
  out['503'] = problem('Redis is unreachable, or the server is shutting down');
  return out;
}

function operation(doc: RouteDoc): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, answer] of Object.entries(doc.responses)) {
    const isProblem = Number(status) >= 400;
    responses[status] = isProblem && !answer.schema && !answer.content ? problem(answer.description) : response(answer);
  }
  for (const [status, answer] of Object.entries(commonProblems(doc))) responses[status] ??= answer;
  const params = parameters(doc);
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag],
    ...(params.length ? { parameters: params } : {}),
    ...(doc.body
      ? { requestBody: { required: true, description: doc.body.description, content: { 'application/json': { schema: schemaOf(doc.body.schema) } } } }
      : {}),
    security: doc.scope ? [{ bearer: [doc.scope] }] : [],
    ...(doc.scope ? { 'x-required-scope': doc.scope } : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document of `routes`. */
export function buildOpenApiDocument(routes: readonly Route[], info: { version: string }): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const { doc } of routes) {
    paths[doc.path] ??= {};
    const item = paths[doc.path];
    if (item) item[doc.method.toLowerCase()] = operation(doc);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'AI dialer API',
      version: info.version,
      description:
        'Enqueue outbound AI calls and follow them. Every request but the health checks and this document carries ' +
        '`Authorization: Bearer <token>` (API_TOKENS); scopes: enqueue, read, admin. Errors are RFC 9457 problem details.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    tags: [
      { name: 'calls', description: 'Enqueue calls, follow and cancel them' },
      { name: 'campaigns', description: 'Campaign controls and reports' },
      { name: 'health', description: 'Liveness, readiness and this document' },
    ],
    paths,
    components: {
      schemas: components(),
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a token from API_TOKENS' } },
    },
  };
}
