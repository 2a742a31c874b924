import { describe, expect, it } from 'vitest';
import { startApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { startTestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';
import { API_TOKENS, body, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

const prefix = uniquePrefix('api-health');
let api: ApiFixture;
useApiFixture(prefix, (f) => (api = f));

describe('/healthz and /readyz', () => {
  it('is alive, and ready only while a dial worker (the one `dialer consumer` runs) is connected to `calls`', async () => {
    expect(body(await call(api.url, 'GET', '/healthz'))).toEqual({ status: 'ok' });
    // the real dial worker against the simulator, with an API on the same prefix
    const pipeline = await startTestPipeline('api-ready', { dialers: 0 });
    const server = await startApiServer({ config: pipeline.config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: API_TOKENS });
    try {
      const idle = await call(server.url, 'GET', '/readyz');
      expect(idle.status).toBe(503);
      expect(body(idle)).toMatchObject({ status: 'not_ready', checks: { redis: { status: 'ok' }, consumers: { status: 'none', count: 0 } } });
      const dialer = await pipeline.startDialer();
      const ready = await waitFor(async () => {
        const answer = await call(server.url, 'GET', '/readyz');
        return answer.status === 200 ? answer : undefined;
      }, 15_000, 'readyz to see the dial worker');
      expect(body(ready)).toMatchObject({ status: 'ready', checks: { redis: { status: 'ok' }, consumers: { status: 'ok', count: 1 } } });
      await dialer.close();
      await waitFor(async () => ((await call(server.url, 'GET', '/readyz')).status === 503 ? true : undefined), 15_000, 'readyz to miss the worker');
    } finally {
      await server.close();
      await pipeline.close();
    }
  });

  it('answers 503 problems (never 500) when Redis goes away, and readyz says Redis is unreachable', async () => {
    const redis = createProducerConnection(testRedisUrl());
    await waitUntilReady(redis);
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix });
    const server = await startApiServer({ config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: API_TOKENS, redis, rateLimitPerSecond: 1000 });
    try {
      expect((await call(server.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155551101' } })).status).toBe(201);
      redis.disconnect(); // the server's only connection: as if Redis were gone
      await waitFor(() => (redis.status === 'end' ? true : undefined), 5_000, 'the connection to close');
      const enqueue = await call(server.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155551102' } });
      expect(problem(enqueue, 503).type).toBe('urn:dialer:problem:unavailable');
      problem(await call(server.url, 'GET', '/v1/calls/c-1', { token: 'read' }), 503);
      const ready = await call(server.url, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(body(ready)).toMatchObject({ status: 'not_ready', checks: { redis: { status: 'fail' } } });
      // bad input is still answered as bad input: the rate limit lets requests through while it cannot count
      problem(await call(server.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone: 1 } }), 400);
    } finally {
      await server.close();
      await closeConnection(redis);
    }
  });
});
