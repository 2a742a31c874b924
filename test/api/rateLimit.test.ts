import { describe, expect, it } from 'vitest';
import { startApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { API_TOKENS, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

const LIMIT = 5;
const prefix = uniquePrefix('api-rate');
let api: ApiFixture;
useApiFixture(prefix, (f) => (api = f), { rateLimitPerSecond: LIMIT });

describe('rate limit per token', () => {
  it('refuses requests over the limit with 429 problems, counted in Redis across two API processes', async () => {
    // a second instance on the same Redis, as behind a load balancer: the count is shared
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix });
    const second = await startApiServer({ config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: API_TOKENS, rateLimitPerSecond: LIMIT });
    try {
      const burst = 3 * LIMIT;
      const answers = await Promise.all(
        Array.from({ length: burst }, (_, i) => call(i % 2 === 0 ? api.url : second.url, 'GET', '/v1/calls/c-nothing', { token: 'read' })),
      );
      const limited = answers.filter((a) => a.status === 429);
      const served = answers.filter((a) => a.status !== 429);
      // one window holds LIMIT; a burst that straddles the window's end can get at most one more window's worth
      expect(served.length).toBeGreaterThanOrEqual(LIMIT);
      expect(served.length).toBeLessThanOrEqual(2 * LIMIT);
      expect(limited.length).toBeGreaterThanOrEqual(LIMIT);
      for (const a of served) expect(a.status).toBe(404);
      const first = limited[0];
      if (!first) throw new Error('no 429');
      const doc = problem(first, 429);
      expect(doc.type).toBe('urn:dialer:problem:rate-limited');
      expect(doc.detail).toMatch(/more than 5 requests per second for this token/);
      expect(Number(first.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(first.headers.get('x-ratelimit-limit')).toBe(String(LIMIT));

      // another token has its own count
      expect((await call(api.url, 'GET', '/v1/calls/c-nothing', { token: 'all' })).status).toBe(404);
      // probes are never limited
      expect((await call(api.url, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await second.close();
    }
  });
});

describe('failed authentication per client address', () => {
  it('answers 401 up to the limit of failures, then 429 to every request needing a token from that address, across API processes', async () => {
    const failures = 3;
    const own = uniquePrefix('api-auth-fail');
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: own });
    const options = { config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: API_TOKENS, rateLimitPerSecond: 1000, authFailureLimit: failures };
    const first = await startApiServer(options);
    const second = await startApiServer(options);
    try {
      // unknown, malformed and missing tokens all count, on either process (the count is in Redis)
      expect((await call(first.url, 'GET', '/v1/calls/c-nothing', { authorization: 'Bearer not-a-configured-token' })).status).toBe(401);
      expect((await call(second.url, 'GET', '/v1/calls/c-nothing', { authorization: 'Basic eDp5' })).status).toBe(401);
      expect((await call(first.url, 'POST', '/v1/calls', { body: { phone_number: '+14155550100' } })).status).toBe(401);
      const limited = await call(second.url, 'GET', '/v1/calls/c-nothing', { authorization: 'Bearer another-guess' });
      const doc = problem(limited, 429);
      expect(doc.type).toBe('urn:dialer:problem:auth-rate-limited');
      expect(doc.detail).toMatch(/^more than 3 failed authentications from this address within 60 s: retry in \d+ s/);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // the address is held back whatever it sends now, so a right guess is not told apart from a wrong one
      problem(await call(first.url, 'GET', '/v1/calls/c-nothing', { token: 'read' }), 429);
      problem(await call(first.url, 'GET', '/admin/queues', { token: 'admin' }), 429);
      // probes and the document need no token and are never held back
      expect((await call(first.url, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await first.close();
      await second.close();
      await deleteKeysWithPrefix(testRedisUrl(), own);
    }
  });

  it('counts failed dashboard logins with the API’s failures', async () => {
    const own = uniquePrefix('api-auth-fail-dash');
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: own });
    const server = await startApiServer({ config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: API_TOKENS, rateLimitPerSecond: 1000, authFailureLimit: 2 });
    const basic = (password: string) => `Basic ${Buffer.from(`ops:${password}`).toString('base64')}`;
    try {
      expect((await call(server.url, 'GET', '/admin/queues', { authorization: basic('wrong-1') })).status).toBe(401);
      expect((await call(server.url, 'GET', '/v1/calls/c-nothing', { authorization: 'Bearer wrong-2' })).status).toBe(401);
      problem(await call(server.url, 'GET', '/admin/queues', { authorization: basic('wrong-3') }), 429);
    } finally {
      await server.close();
      await deleteKeysWithPrefix(testRedisUrl(), own);
    }
  });
});
