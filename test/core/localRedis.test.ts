import { describe, expect, it } from 'vitest';
import { findOrStartRedis, redisAnswers } from '../../src/core/localRedis.js';
import { testRedisUrl } from '../helpers/testRedis.js';

/** Nothing listens on port 1 of loopback. */
const NOBODY = 'redis://127.0.0.1:1';

describe('findOrStartRedis', () => {
  it('uses REDIS_URL first', async () => {
    const found = await findOrStartRedis({ env: { REDIS_URL: testRedisUrl() }, defaultUrl: NOBODY });
    expect(found).toMatchObject({ url: testRedisUrl(), source: 'REDIS_URL' });
  });

  it('fails clearly when REDIS_URL is set but nothing answers there', async () => {
    await expect(findOrStartRedis({ env: { REDIS_URL: NOBODY } })).rejects.toThrow(/REDIS_URL is set to redis:\/\/127\.0\.0\.1:1 but no Redis answers/);
  });

  it('uses the default address when it answers', async () => {
    const found = await findOrStartRedis({ env: {}, defaultUrl: testRedisUrl() });
    expect(found.source).toBe('default');
  });

  it('tries Docker before starting a redis-server of its own', async () => {
    const found = await findOrStartRedis({
      env: {},
      defaultUrl: NOBODY,
      docker: async () => ({ url: testRedisUrl(), source: 'docker', stop: async () => undefined }),
    });
    expect(found.source).toBe('docker');
  });

  it('starts a redis-server on a free port when nothing else is there, and stops it', async () => {
    const found = await findOrStartRedis({ env: {}, defaultUrl: NOBODY, docker: async () => undefined });
    try {
      expect(found.source).toBe('redis-server');
      expect(await redisAnswers(found.url)).toBe(true);
    } finally {
      await found.stop();
    }
    await expect.poll(() => redisAnswers(found.url), { timeout: 5000 }).toBe(false);
  });
});
