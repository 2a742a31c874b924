import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { CALLS_QUEUE, type CallJob } from '../../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { systemClock } from '../../src/core/time.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { deleteKeysWithPrefix, testRedisUrl } from '../helpers/testRedis.js';

/** Tokens every API test file is served with: one per scope, one with all, one with two. */
export const TOKENS = {
  all: 'all-scopes-token-0123456789abcdef',
  enqueue: 'enqueue-only-token-0123456789abcdef',
  read: 'read-only-token-0123456789abcdef',
  admin: 'admin-only-token-0123456789abcdef',
  enqueueRead: 'enqueue-read-token-0123456789abcdef',
} as const;
export const API_TOKENS = `${TOKENS.all},${TOKENS.enqueue}:enqueue,${TOKENS.read}:read,${TOKENS.admin}:admin,${TOKENS.enqueueRead}:enqueue+read`;

export interface ApiFixture {
  server: ApiServer;
  url: string;
  prefix: string;
  /** A connection of the test's own (not the server's), for checks in Redis. */
  redis: Redis;
  store: CallStore;
  queue: Queue<CallJob>;
  maxAttempts: number;
}

export interface FixtureOptions {
  rateLimitPerSecond?: number;
}

/** A high limit, so tests that do not test the rate limit never meet it. */
const TEST_RATE_LIMIT = 100_000;
/** Tests send bad tokens on purpose from one address: they must not meet the limit on failed authentications either. */
const TEST_AUTH_FAILURE_LIMIT = 100_000;

/**
 * An API server on 127.0.0.1 (port 0) over the test Redis with `prefix`, for the calling file's tests (handed over
 * through `use`); closed after them, with the prefix's keys deleted and no network handle left open.
 */
export function useApiFixture(prefix: string, use: (fixture: ApiFixture) => void, options: FixtureOptions = {}): void {
  let baseline = 0;
  let fixture: ApiFixture | undefined;
  beforeAll(async () => {
    baseline = openNetworkHandles().length;
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix, DIAL_MAX_ATTEMPTS: '3' });
    const server = await startApiServer({
      config,
      logger: createLogger('silent'),
      port: 0,
      host: '127.0.0.1',
      tokens: API_TOKENS,
      rateLimitPerSecond: options.rateLimitPerSecond ?? TEST_RATE_LIMIT,
      authFailureLimit: TEST_AUTH_FAILURE_LIMIT,
    });
    const redis = createProducerConnection(testRedisUrl());
    await waitUntilReady(redis);
    fixture = {
      server,
      url: server.url,
      prefix,
      redis,
      store: new CallStore(redis, prefix, systemClock),
      queue: new Queue<CallJob>(CALLS_QUEUE, { connection: redis, prefix }),
      maxAttempts: config.dial.maxAttempts,
    };
    use(fixture);
  });
  afterAll(async () => {
    if (fixture) {
      await fixture.server.close();
      await fixture.queue.close();
      await closeConnection(fixture.redis);
    }
    await deleteKeysWithPrefix(testRedisUrl(), prefix);
    await expectNoLeakedHandles(baseline);
  });
}

export interface Answer {
  status: number;
  contentType: string;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

/** One HTTP request to the API; `token` names a TOKENS entry (or is a raw Authorization value with `raw:`). */
export async function call(
  url: string,
  method: string,
  path: string,
  options: { token?: keyof typeof TOKENS; authorization?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${TOKENS[options.token]}`;
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  const response = await fetch(`${url}${path}`, { method, headers, body });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', headers: response.headers, text, json };
}

/** The answer's JSON as an object with string keys (throws when it is not one). */
export function body(answer: Answer): Record<string, unknown> {
  if (answer.json === null || typeof answer.json !== 'object' || Array.isArray(answer.json)) {
    throw new Error(`expected a JSON object, got ${answer.status} ${answer.text.slice(0, 200)}`);
  }
  return answer.json as Record<string, unknown>;
}

/** Asserts an RFC 9457 problem answer and returns its document. */
export function problem(answer: Answer, status: number): Record<string, unknown> {
  if (answer.status !== status || !answer.contentType.startsWith('application/problem+json')) {
    throw new Error(`expected a ${status} problem+json, got ${answer.status} ${answer.contentType}: ${answer.text.slice(0, 300)}`);
  }
  const doc = body(answer);
  for (const member of ['type', 'title', 'status', 'detail'] as const) {
    if (doc[member] === undefined) throw new Error(`problem without ${member}: ${answer.text}`);
  }
  if (doc.status !== status) throw new Error(`problem status ${String(doc.status)} ≠ HTTP ${status}`);
  return doc;
}
