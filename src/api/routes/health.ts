/** Health routes (no token): liveness, readiness (Redis and dial workers) and the OpenAPI document. */
import { SECOND } from '../../core/time.js';
import type { ApiContext } from '../context.js';
import { defineRoute, type Route } from '../route.js';
import { healthView, readinessView } from '../schemas.js';
import { errorMessage } from '../../core/errors.js';

/** A readiness probe answers within this, whatever Redis does. */
const READY_CHECK_TIMEOUT_MS = 2 * SECOND;
/** What BullMQ's getWorkers() answers on Redis services that do not list clients (its queue-getters.ts). */
const NO_CLIENT_LIST = /does not support client list/i;

class CheckTimeout extends Error {
  override readonly name = 'CheckTimeout';
}

async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type Readiness = {
  status: 'ready' | 'not_ready';
  checks: {
    redis: { status: 'ok' | 'fail'; detail?: string };
    consumers: { status: 'ok' | 'none' | 'unknown' | 'fail'; count?: number; detail?: string };
  };
};

/**
 * Redis answers PING, and at least one dial worker is connected to `calls` (BullMQ's getWorkers(), from Redis' client
 * list, so it sees consumers on every host). Where Redis does not list clients, consumers are `unknown` and do not make
 * the API unready.
 */
export async function checkReadiness(ctx: ApiContext): Promise<Readiness> {
  let redis: Readiness['checks']['redis'];
  try {
    await within(READY_CHECK_TIMEOUT_MS, 'PING', ctx.redis.ping());
    redis = { status: 'ok' };
  } catch (err) {
    redis = { status: 'fail', detail: `Redis is not reachable: ${errorMessage(err)}` };
  }
  let consumers: Readiness['checks']['consumers'];
  if (redis.status === 'fail') {
    consumers = { status: 'unknown', detail: 'Redis is not reachable' };
  } else {
    try {
      const workers = await within(READY_CHECK_TIMEOUT_MS, 'CLIENT LIST', ctx.calls.primary().getWorkers());
      if (workers.some((w) => NO_CLIENT_LIST.test(w.name ?? ''))) {
        consumers = { status: 'unknown', detail: 'this Redis does not list its clients' };
      } else if (workers.length === 0) {
        consumers = { status: 'none', count: 0, detail: 'no dial worker is connected to the `calls` queue: start `dialer consumer`' };
      } else {
        consumers = { status: 'ok', count: workers.length };
      }
    } catch (err) {
      consumers = { status: 'fail', detail: `cannot list workers: ${errorMessage(err)}` };
    }
  }
  const ready = redis.status === 'ok' && (consumers.status === 'ok' || consumers.status === 'unknown');
  return { status: ready ? 'ready' : 'not_ready', checks: { redis, consumers } };
}

/** The health routes; `document` gives the OpenAPI document (built from every route, this one included). */
export function healthRoutes(ctx: ApiContext, document: () => Record<string, unknown>): Route[] {
  const healthz = defineRoute(
    {
      method: 'GET',
      path: '/healthz',
      operationId: 'healthz',
      summary: 'Liveness: the process answers',
      tag: 'health',
      responses: { 200: { description: 'Alive', schema: healthView } },
    },
    async () => ({ status: 200, body: { status: 'ok' } }),
  );

  const readyz = defineRoute(
    {
      method: 'GET',
      path: '/readyz',
      operationId: 'readyz',
      summary: 'Readiness: Redis reachable and dial workers alive',
      description:
        '503 while Redis does not answer or no dial worker (`dialer consumer`) is connected to the `calls` queue. Calls ' +
        'enqueued meanwhile would wait in the queue: a load balancer that should keep sending them can probe /healthz.',
      tag: 'health',
      responses: {
        200: { description: 'Ready', schema: readinessView },
        503: { description: 'Not ready: `checks` says what is missing', schema: readinessView },
      },
    },
    async () => {
      const readiness = await checkReadiness(ctx);
      return { status: readiness.status === 'ready' ? 200 : 503, body: readiness };
    },
  );

  const openapi = defineRoute(
    {
      method: 'GET',
      path: '/openapi.json',
      operationId: 'openapi',
      summary: 'This API as an OpenAPI 3.1 document',
      tag: 'health',
      responses: { 200: { description: 'The document', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
    async () => ({ status: 200, body: document() }),
  );

  return [healthz, readyz, openapi];
}
