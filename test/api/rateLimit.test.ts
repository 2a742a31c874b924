import { describe, expect, it } from 'vitest';
import { startApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
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
