/**
 * The queue dashboard (issue 12 §5): bull-board (@bull-board/api + @bull-board/fastify) mounted by `dialer serve` at
 * DASHBOARD_PATH, showing the dialer's BullMQ queues, behind a token with the `admin` scope.
 *
 * How a browser sends the token: HTTP Basic authentication (RFC 7617) with the admin token as the password (any user
 * name). A browser asks for it once, on the first page, and sends it with every request of the page after that
 * (assets and the dashboard's own API calls), which a bearer header cannot do without an extension; nothing is kept
 * server-side (no session, no cookie to sign), so the API stays stateless. `Authorization: Bearer <token>` works as
 * well (curl, tests). Like the bearer token, the password travels in clear: serve it over TLS beyond loopback.
 *
 * Every queue is shown read-only (bull-board's readOnlyMode): removing, retrying or promoting a dial job from the
 * dashboard would bypass the call records (a removed job leaves its call pending for ever, a promoted one skips its
 * retry delay). Calls are changed through `dialer cancel` / `pause` / the API instead.
 */
import { callShardsOf } from '../core/callShards.js';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisClient } from '../core/redisClient.js';
import { OUTCOME_WATCHDOG_QUEUE } from '../core/outcomeWatchdogQueue.js';
import { CALL_RESULTS_QUEUE, CALLS_QUEUE } from '../core/queues.js';
import { logRedisErrors } from '../core/redisConnection.js';
import type { Logger } from '../core/logger.js';
import { WEBHOOKS_QUEUE } from '../results/webhooks.js';
import { CALL_SCHEDULES_QUEUE } from '../schedules/callSchedules.js';
import { ApiProblem, PROBLEM_CONTENT_TYPE } from './problem.js';
import { authenticate, type ApiToken } from './tokens.js';

/** Where `serve` mounts the dashboard. */
export const DASHBOARD_PATH = '/admin/queues';
/** The realm a browser names when it asks for the token. */
const BASIC_REALM = 'Basic realm="dialer queue dashboard (password: an admin token)", charset="UTF-8"';
const BASIC = /^basic +([A-Za-z0-9+/]+=*)\s*$/i;

/** Every queue the dialer uses, with what it holds (shown under its name). */
const DASHBOARD_QUEUES: readonly { name: string; description: string }[] = [
  { name: CALLS_QUEUE, description: 'dial jobs: one per call, retried per outcome' },
  { name: CALL_RESULTS_QUEUE, description: 'outcomes to apply to call records' },
  { name: OUTCOME_WATCHDOG_QUEUE, description: 'checks that a connected call gets its outcome' },
  { name: WEBHOOKS_QUEUE, description: 'result webhook deliveries' },
  { name: CALL_SCHEDULES_QUEUE, description: 'recurring call firings (dialer schedule)' },
];

/**
 * The token a dashboard request carries: the password of Basic credentials, or a bearer token. A header in neither
 * form counts as no token (so a browser is asked for one).
 */
function presentedAuthorization(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization?.trim();
  if (!header) return undefined;
  const basic = BASIC.exec(header);
  if (!basic?.[1]) return header;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon === -1 ? '' : decoded.slice(colon + 1);
  return password ? `Bearer ${password}` : undefined;
}

/** Admits admin tokens; 401 asking for Basic credentials, or 403 for a token without `admin`. */
function authorizeDashboard(tokens: readonly ApiToken[], request: FastifyRequest): ApiToken {
  const auth = authenticate(tokens, presentedAuthorization(request));
  const ask = { 'www-authenticate': BASIC_REALM };
  switch (auth.status) {
    case 'missing':
      throw new ApiProblem('unauthorized', 'the queue dashboard needs an admin token: give it as the password (any user name), or send `Authorization: Bearer <token>`', {}, ask);
    case 'malformed':
      throw new ApiProblem('unauthorized', `the Authorization header is malformed: ${auth.why}`, {}, ask);
    case 'unknown':
      throw new ApiProblem('unauthorized', 'that token is not one of API_TOKENS', {}, ask);
    case 'ok':
      break;
  }
  if (!auth.token.scopes.has('admin')) {
    throw new ApiProblem('forbidden', `the queue dashboard needs the \`admin\` scope; this token has: ${[...auth.token.scopes].join(', ') || 'none'}`);
  }
  return auth.token;
}

/**
 * Mounts bull-board at DASHBOARD_PATH on `app` (see the file's comment). Its queue handles share `redis` and are
 * closed when the app closes (fastify's onClose), before the server lets go of the connection.
 */
export async function mountDashboard(
  app: FastifyInstance,
  options: {
    redis: RedisClient;
    prefix: string;
    tokens: readonly ApiToken[];
    logger: Logger;
    /** The API's limit on failed authentications per client address (server.ts): a wrong password counts too. */
    guardAuth: (request: FastifyRequest, check: () => ApiToken) => Promise<ApiToken>;
  },
): Promise<void> {
  // each call shard's `calls` beside QUEUE_PREFIX's own (callShards.ts; none with one shard)
  const shards = callShardsOf(options.prefix).prefixes.slice(1);
  // bull-board keys its queues by name: each shard's `calls` gets a name of its own (`s1-calls`, …), or the last one
  // added would stand in for them all
  const queues = [
    ...DASHBOARD_QUEUES.map(({ name, description }) => ({ name, prefix: options.prefix, description, shard: 0 })),
    ...shards.map((prefix, i) => ({ name: CALLS_QUEUE, prefix, description: `dial jobs of the campaigns in call shard ${prefix}`, shard: i + 1 })),
  ].map(({ name, prefix, description, shard }) => {
    const queue = new Queue(name, { connection: options.redis, prefix });
    logRedisErrors(queue, `${name} queue of ${prefix} (dashboard)`, options.logger);
    return { queue, description, shard };
  });
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: queues.map(
      ({ queue, description, shard }) =>
        new BullMQAdapter(queue, { readOnlyMode: true, description, ...(shard > 0 ? { prefix: `s${shard}-`, displayName: `${queue.name} (call shard ${shard})` } : {}) }),
    ),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'dialer queues' } },
  });
  await app.register(
    async (scope) => {
      // in this plugin's scope only: every dashboard route, its assets included, needs an admin token. The refusal is
      // sent here: an error thrown would reach bull-board's own error handler, which answers 500 without our problem.
      scope.addHook('onRequest', async (request, reply) => {
        try {
          request.apiToken = await options.guardAuth(request, () => authorizeDashboard(options.tokens, request));
        } catch (err) {
          if (!(err instanceof ApiProblem)) throw err;
          return reply
            .code(err.status)
            .headers(err.headers)
            .type(PROBLEM_CONTENT_TYPE)
            .send(JSON.stringify(err.toProblem(request.url.split('?')[0] ?? request.url)));
        }
      });
      await scope.register(serverAdapter.registerPlugin());
    },
    { prefix: DASHBOARD_PATH },
  );
  app.addHook('onClose', async () => {
    await Promise.all(
      queues.map(({ queue }) => queue.close().catch((err: unknown) => options.logger.error({ err, queue: queue.name }, 'closing a dashboard queue failed'))),
    );
  });
}
