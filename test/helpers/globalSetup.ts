import { findOrStartRedis, type ProvidedRedis } from '../../src/core/localRedis.js';
import { startRedisContainer } from './redisContainer.js';

let provided: ProvidedRedis | undefined;

/** Picks one Redis for the whole run and hands its URL to every test file through TEST_REDIS_URL. */
export async function setup(): Promise<void> {
  provided = await findOrStartRedis({ docker: startRedisContainer });
  process.env.TEST_REDIS_URL = provided.url;
}

export async function teardown(): Promise<void> {
  await provided?.stop();
}
