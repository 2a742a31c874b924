/**
 * `dialer serve`: the HTTP API for other services (fastify 5). Routes come from routes/*.ts as data (route.ts), are
 * checked against their zod schemas, and answer errors as RFC 9457 problem details. Bearer tokens with scopes guard
 * every route but the health checks and `/openapi.json`; each token is rate limited in Redis (@fastify/rate-limit's
 * Redis store), so the limit holds across every API process. The process keeps no state of its own: calls, records,
 * idempotency keys and rate-limit counters all live in Redis, and any number of instances can serve behind a load
 * balancer. bull-board's queue dashboard is mounted at /admin/queues behind an admin token (dashboard.ts).
 */
import { verifyCallShards } from '../core/callShards.js';
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { RedisClient } from '../core/redisClient.js';
import type { RedisTarget } from '../core/redisTarget.js';
import { loadProfileCatalog } from '../agent/profiles.js';
import { CallStore } from '../core/callStore.js';
import { REGION_SOURCES } from '../core/phone.js';
import { settingError, type DialerConfig } from '../core/config.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { CallQueues } from '../core/callQueues.js';
import { closeConnection, createProducerConnection, isRedisConnectionError, logRedisErrors, waitUntilReady } from '../core/redisConnection.js';
import { SECOND, systemClock, type Clock } from '../core/time.js';
import { CallProducer } from '../producer/enqueueCalls.js';
import { CallCampaignIndex } from './callIndex.js';
import { mountDashboard } from './dashboard.js';
import type { ApiContext } from './context.js';
import { IdempotencyKeys } from './idempotency.js';
import { parseJsonBody } from './jsonBody.js';
import { buildOpenApiDocument } from './openapi.js';
import { ApiProblem, PROBLEM_CONTENT_TYPE } from './problem.js';
import type { Route } from './route.js';
import { CALL_BODY_MAX_BYTES, callRoutes } from './routes/calls.js';
import { campaignRoutes } from './routes/campaigns.js';
import { campaignObjectRoutes } from './routes/campaignObjects.js';
import { scheduleRoutes } from './routes/schedules.js';
import { healthRoutes } from './routes/health.js';
import { authenticate, parseApiTokens, type ApiToken, type Scope } from './tokens.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The token scope the route needs; absent: no token needed. */
    scope?: Scope;
  }
  interface FastifyRequest {
    /** The token the request was authenticated with (routes that need one). */
    apiToken: ApiToken | null;
  }
}

/** Version of the API's document (`info.version`); routes live under /v1. */
export const API_VERSION = '1.0.0';
/** A request (headers and body) must arrive within this: a client trickling a body cannot hold a connection for ever. */
const REQUEST_TIMEOUT_MS = 60 * SECOND;
/** The rate limit's window: API_RATE_LIMIT requests per token per window. */
const RATE_LIMIT_WINDOW_MS = SECOND;
/**
 * Failed authentications (no, malformed or unknown token; the dashboard's too) one client address may make per
 * AUTH_FAILURE_WINDOW_MS; past them, every request from that address that needs a token gets a 429 until the window
 * ends, whatever token it carries, so a guess that happens to be right is not told apart from a wrong one. Counted in
 * Redis, so the count holds across every API process.
 */
export const AUTH_FAILURE_LIMIT = 20;
const AUTH_FAILURE_WINDOW_MS = 60 * SECOND;
const BEARER_REALM = 'Bearer realm="dialer"';
/** Longest path parameter the router passes on (fastify's default is 100, below idSchema's 128). */
const MAX_PATH_PARAM_CHARS = 1024;

/** `startApiServer` could not reach Redis (`redis`: the node, cluster or sentinels it asked); `cause` is the connection's error. */
export class ApiRedisUnreachableError extends Error {
  override readonly name = 'ApiRedisUnreachableError';

  constructor(
    readonly redis: RedisTarget,
    override readonly cause: unknown,
  ) {
    super(`cannot reach Redis (${errorMessage(cause)})`);
  }
}

export interface ApiServerOptions {
  config: DialerConfig;
  logger: Logger;
  /** Overrides of API_PORT / API_HOST / API_TOKENS / API_RATE_LIMIT (tests listen on port 0). */
  port?: number;
  host?: string;
  tokens?: string;
  rateLimitPerSecond?: number;
  /** Overrides AUTH_FAILURE_LIMIT (tests, which fail authentication on purpose many times from one address). */
  authFailureLimit?: number;
  /** Serve on this connection (left open by close()); default: a connection to REDIS_URL, closed by close(). */
  redis?: RedisClient;
  clock?: Clock;
}

export interface ApiServer {
  /** `http://host:port` as listened on. */
  url: string;
  port: number;
  /** The fastify instance (for tests and embedding). */
  app: FastifyInstance;
  /**
   * Stops taking requests and closes. Without `force`, requests in progress finish first and new ones on open
   * connections get 503 (`Connection: close`); with `force`, open connections are cut. Idempotent; a forced close
   * during a drain cuts what the drain waits for.
   */
  close(options?: { force?: boolean }): Promise<void>;
}

/**
 * ioredis' words for a command refused because the connection is not writable and the offline queue is off (producer
 * connections, Redis.js sendCommand): Redis is away, even when the status has not said so yet.
 */
const NOT_WRITABLE_MESSAGE = "Stream isn't writeable and enableOfflineQueue options is false";

/** The problem an error stands for: ours as is, fastify's 4xx by their code, Redis outages 503, the rest 500. */
function problemFor(err: FastifyError | Error, redis: RedisClient, requestId: string): ApiProblem {
  if (err instanceof ApiProblem) return err;
  const code = (err as FastifyError).code;
  const status = (err as FastifyError).statusCode;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiProblem('body-too-large', `the body is larger than this route takes (${err.message.replace(/^.*?:\s*/, '')})`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiProblem('unsupported-media-type', 'send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiProblem('invalid-request', 'the body is empty: send a JSON object');
    default:
      break;
  }
  if (err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new ApiProblem('invalid-request', `the body is not valid JSON: ${err.message}`);
  }
  if (status !== undefined && status >= 400 && status < 500) return new ApiProblem('invalid-request', err.message);
  if (isRedisConnectionError(err) || err.message === NOT_WRITABLE_MESSAGE || redis.status !== 'ready') {
    return new ApiProblem('unavailable', 'Redis is not reachable right now: retry later (the request changed nothing it did not finish)');
  }
  return new ApiProblem('internal', `unexpected error (request ${requestId}); the server log has it`);
}

function sendProblem(reply: FastifyReply, request: FastifyRequest, problem: ApiProblem): FastifyReply {
  return reply
    .code(problem.status)
    .headers(problem.headers)
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify(problem.toProblem(request.url.split('?')[0] ?? request.url)));
}

/**
 * Route handlers running now. Fastify's close() resolves once every connection is gone, and a client that hangs up
 * mid-request takes its connection with it while its handler still runs: the drain waits for the handlers too, so
 * none is cut off between writing a call record and adding its job.
 */
class ActiveHandlers {
  private count = 0;
  private waiters: (() => void)[] = [];

  async run<T>(work: () => Promise<T>): Promise<T> {
    this.count += 1;
    try {
      return await work();
    } finally {
      this.count -= 1;
      if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
    }
  }

  /** Resolves once no handler runs. */
  idle(): Promise<void> {
    return this.count === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** What the running server shares with its hooks and handlers: whether it is closing, and its handlers in progress. */
interface ServerState {
  closing: boolean;
  active: ActiveHandlers;
}

/** `/v1/calls/{id}` → `/v1/calls/:id` (fastify's form). */
const fastifyPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');
/** A matcher of concrete paths for a documented one, for 405 answers. */
const pathMatcher = (path: string) => new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}$`);

/**
 * Runs an authentication check (`authorize`, the dashboard's) under the limit on failed authentications per client
 * address (AUTH_FAILURE_LIMIT): an address past it gets a 429 before its token is looked at; a 401 the check throws
 * is counted against the address.
 */
export type AuthGuard = (request: FastifyRequest, check: () => ApiToken) => Promise<ApiToken>;

function authFailureGuard(app: FastifyInstance, limit: number): AuthGuard {
  const failures = app.createRateLimit({
    max: limit,
    timeWindow: AUTH_FAILURE_WINDOW_MS,
    // its own count per client address (the store keeps it beside the per-token counts, in Redis)
    keyGenerator: (request) => `auth-failures:${request.ip}`,
    allowList: () => false,
  });
  return async (request, check) => {
    const seen = await failures(request, { increment: false });
    if (!seen.isAllowed && seen.remaining === 0 && seen.ttlInSeconds > 0) {
      throw new ApiProblem(
        'auth-rate-limited',
        `more than ${limit} failed authentications from this address within ${AUTH_FAILURE_WINDOW_MS / SECOND} s: retry in ${seen.ttlInSeconds} s`,
        {},
        { 'retry-after': String(seen.ttlInSeconds) },
      );
    }
    try {
      return check();
    } catch (err) {
      if (err instanceof ApiProblem && err.kind === 'unauthorized') await failures(request);
      throw err;
    }
  };
}

/** Checks the bearer token and the route's scope; 401 or 403 problems that say which. */
function authorize(tokens: readonly ApiToken[], request: FastifyRequest, scope: Scope): ApiToken {
  const auth = authenticate(tokens, request.headers.authorization);
  switch (auth.status) {
    case 'missing':
      throw new ApiProblem('unauthorized', 'no bearer token: send `Authorization: Bearer <token>` (a token from API_TOKENS)', {}, { 'www-authenticate': BEARER_REALM });
    case 'malformed':
      throw new ApiProblem('unauthorized', `the Authorization header is malformed: ${auth.why}`, {}, { 'www-authenticate': `${BEARER_REALM}, error="invalid_request"` });
    case 'unknown':
      throw new ApiProblem('unauthorized', 'the bearer token is not one of API_TOKENS', {}, { 'www-authenticate': `${BEARER_REALM}, error="invalid_token"` });
    case 'ok':
      break;
  }
  if (!auth.token.scopes.has(scope)) {
    const has = [...auth.token.scopes].join(', ') || 'none';
    throw new ApiProblem('forbidden', `this route needs the \`${scope}\` scope; this token has: ${has}`, {}, {
      'www-authenticate': `${BEARER_REALM}, error="insufficient_scope", scope="${scope}"`,
    });
  }
  return auth.token;
}

/** Builds the fastify app on `ctx` (not listening yet). */
export async function buildApiApp(
  ctx: ApiContext,
  tokens: readonly ApiToken[],
  limits: { rateLimitPerSecond: number; authFailureLimit: number },
  state: ServerState,
): Promise<FastifyInstance> {
  const loggerInstance: FastifyBaseLogger = ctx.logger;
  const app = Fastify({
    loggerInstance,
    // one line per refused or failed request comes from the error handler; none per request served
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: CALL_BODY_MAX_BYTES,
    requestTimeout: REQUEST_TIMEOUT_MS,
    // answered by our own hook below, as a problem document
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // ids up to this reach the route, whose schema refuses them with a field error (idSchema allows 128 characters)
    routerOptions: { maxParamLength: MAX_PATH_PARAM_CHARS },
    // a URL the router cannot decode (bad percent-encoding, a parameter over the limit) is a problem too
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, request, problemFor(error, ctx.redis, request.id));
    },
  });
  app.decorateRequest('apiToken', null);
  // JSON only: a text/plain body is refused (415) instead of reaching a route as a string
  app.removeContentTypeParser('text/plain');
  // our JSON parser: a body holding __proto__ or constructor.prototype is a 422 naming the key (jsonBody.ts); each
  // route's bodyLimit still applies (fastify reads the body up to it before calling the parser)
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      // Many HTTP clients send `Content-Type: application/json` on every request, a DELETE or a bodiless POST included:
      // an empty body is no body (a route that needs one says so: route.ts)
      done(null, text.length === 0 ? undefined : parseJsonBody(text));
    } catch (err) {
      done(err instanceof Error ? err : new Error(String(err)), undefined);
    }
  });

  // set once the rate-limit plugin is registered below (its createRateLimit), before any request is taken
  let guardAuth: AuthGuard = () => Promise.reject(new Error('the API took a request before its auth guard was set up'));
  app.addHook('onRequest', async (request, reply) => {
    if (state.closing) {
      reply.header('connection', 'close');
      throw new ApiProblem('unavailable', 'the server is shutting down: retry (another instance will answer)');
    }
    const scope = request.routeOptions.config.scope;
    if (scope) request.apiToken = await guardAuth(request, () => authorize(tokens, request, scope));
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    if (encoding && encoding !== 'identity') {
      throw new ApiProblem('unsupported-media-type', `Content-Encoding ${encoding} is not taken: send the body uncompressed`);
    }
  });

  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    max: limits.rateLimitPerSecond,
    timeWindow: RATE_LIMIT_WINDOW_MS,
    redis: ctx.redis,
    nameSpace: `${ctx.prefix}:api:rate-limit:`,
    // routes without a token (health, document) are not limited: probes must always get through
    allowList: (request) => request.apiToken === null,
    keyGenerator: (request) => request.apiToken?.label ?? request.ip,
    // while Redis is away nothing can be counted: requests go on to their route, which answers 503 (or 400 for bad
    // input) itself, instead of every request failing in the limiter
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new ApiProblem('rate-limited', `more than ${context.max} requests per second for this token: retry in ${context.after}`),
  });
  guardAuth = authFailureGuard(app, limits.authFailureLimit);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const problem = problemFor(err, ctx.redis, request.id);
    if (problem.status >= 500) ctx.logger.error({ err, reqId: request.id, method: request.method, url: request.url }, 'request failed');
    // the kind, not the detail: a detail may quote the caller's input, phone numbers included
    else ctx.logger.debug({ reqId: request.id, method: request.method, url: request.url, status: problem.status, problem: problem.kind }, 'request refused');
    return sendProblem(reply, request, problem);
  });

  const routes: Route[] = [...callRoutes(ctx), ...campaignRoutes(ctx), ...campaignObjectRoutes(ctx), ...scheduleRoutes(ctx)];
  let document: Record<string, unknown> | undefined;
  routes.push(...healthRoutes(ctx, () => (document ??= buildOpenApiDocument(routes, { version: API_VERSION }))));

  const matchers = routes.map((r) => ({ match: pathMatcher(r.doc.path), method: r.doc.method }));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    const allowed = matchers.filter((m) => m.match.test(path)).map((m) => m.method);
    if (allowed.length > 0) {
      const allow = [...new Set(allowed.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])))].join(', ');
      return sendProblem(reply, request, new ApiProblem('method-not-allowed', `${request.method} is not allowed on ${path}; allowed: ${allow}`, {}, { allow }));
    }
    return sendProblem(reply, request, new ApiProblem('not-found', `no route ${request.method} ${path} (see /openapi.json)`));
  });

  await mountDashboard(app, { redis: ctx.redis, prefix: ctx.prefix, tokens, logger: ctx.logger, guardAuth });

  for (const route of routes) {
    app.route({
      method: route.doc.method,
      url: fastifyPath(route.doc.path),
      bodyLimit: route.doc.body?.maxBytes,
      config: { scope: route.doc.scope },
      handler: async (request, reply) => {
        const answer = await state.active.run(() => route.handle(request));
        reply.code(answer.status);
        if (answer.headers) reply.headers(answer.headers);
        if (answer.contentType) return reply.type(answer.contentType).send(answer.body);
        return reply.type('application/json; charset=utf-8').send(JSON.stringify(answer.body));
      },
    });
  }
  return app;
}

/**
 * Starts the API: checks API_TOKENS (ConfigError naming it), connects to Redis (ApiRedisUnreachableError when it
 * cannot), and listens on API_HOST:API_PORT.
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { config, logger } = options;
  const tokens = parseApiTokens(options.tokens ?? config.api.tokens);
  const shortTokens = tokens.filter((t) => t.short).map((t) => t.label);
  if (shortTokens.length > 0) logger.warn({ tokens: shortTokens }, 'API tokens shorter than 24 characters can be guessed: use long random ones (e.g. openssl rand -hex 32)');
  const rateLimitPerSecond = options.rateLimitPerSecond ?? config.api.rateLimitPerSecond;
  if (!Number.isInteger(rateLimitPerSecond) || rateLimitPerSecond <= 0) throw settingError('API_RATE_LIMIT', 'must be a whole number > 0', String(rateLimitPerSecond));
  const authFailureLimit = options.authFailureLimit ?? AUTH_FAILURE_LIMIT;

  const ownsRedis = options.redis === undefined;
  const redis = options.redis ?? createProducerConnection(config.redis, {}, { name: 'api', logger, level: 'warn' });
  if (ownsRedis) {
    try {
      await waitUntilReady(redis);
    } catch (err) {
      await closeConnection(redis);
      throw new ApiRedisUnreachableError(config.redis, err);
    }
  }
  try {
    await verifyCallShards(redis, config.callShards);
  } catch (err) {
    if (ownsRedis) await closeConnection(redis);
    throw err;
  }
  const clock = options.clock ?? systemClock;
  const store = new CallStore(redis, config.queuePrefix, clock);
  const calls = new CallQueues(redis, config.queuePrefix, (queue, shard) => logRedisErrors(queue, shard === config.queuePrefix ? 'calls queue' : `calls queue of ${shard}`, logger));
  const producer = new CallProducer({
    connection: redis,
    prefix: config.queuePrefix,
    maxAttempts: config.dial.maxAttempts,
    clock,
    // numbers without a country code are read in DIAL_DEFAULT_REGION, as `enqueue` and `import` read them
    defaultRegion: config.dial.defaultRegion,
    // a refused number says how an API caller gives a region (its JSON field, the server's setting), not a CLI flag
    regionSources: REGION_SOURCES.api,
    profiles: () => loadProfileCatalog(process.env),
  });
  const ctx: ApiContext = {
    redis,
    prefix: config.queuePrefix,
    store,
    producer,
    calls,
    callIndex: new CallCampaignIndex(redis, config.queuePrefix, store, calls, clock),
    idempotency: new IdempotencyKeys(redis, config.queuePrefix),
    logger,
    clock,
    timeZone: config.dial.timeZone,
    profiles: () => loadProfileCatalog(process.env),
    defaultRegion: config.dial.defaultRegion,
  };
  const state: ServerState = { closing: false, active: new ActiveHandlers() };
  const releaseRedis = async () => {
    await producer.close();
    await calls.close();
    if (ownsRedis) await closeConnection(redis);
  };
  let app: FastifyInstance;
  try {
    app = await buildApiApp(ctx, tokens, { rateLimitPerSecond, authFailureLimit }, state);
    await app.listen({ port: options.port ?? config.api.port, host: options.host ?? config.api.host });
  } catch (err) {
    await releaseRedis();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? config.api.port);
  const host = options.host ?? config.api.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let serverClosed: Promise<void> | undefined;
  let released: Promise<void> | undefined;
  const close = async (closeOptions: { force?: boolean } = {}) => {
    state.closing = true;
    // fastify's close: no new connections, idle keep-alive ones closed, requests in progress finish
    serverClosed ??= app.close();
    if (closeOptions.force) {
      app.server.closeAllConnections();
    } else {
      await serverClosed;
      await state.active.idle();
    }
    await serverClosed;
    released ??= releaseRedis();
    await released;
  };
  return { url, port, app, close };
}
