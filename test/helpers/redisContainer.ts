import type { ProvidedRedis } from '../../src/core/localRedis.js';

const REDIS_IMAGE = 'redis:7-alpine';
const REDIS_PORT = 6379;

/** Starts Redis in Docker through testcontainers when a Docker engine answers; undefined otherwise. */
export async function startRedisContainer(): Promise<ProvidedRedis | undefined> {
  try {
    const { GenericContainer, getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    const container = await new GenericContainer(REDIS_IMAGE)
      .withCommand(['redis-server', '--maxmemory-policy', 'noeviction'])
      .withExposedPorts(REDIS_PORT)
      .start();
    return {
      url: `redis://${container.getHost()}:${container.getMappedPort(REDIS_PORT)}`,
      source: 'docker',
      stop: async () => {
        await container.stop();
      },
    };
  } catch {
    return undefined; // no Docker engine here: the caller falls through to redis-server
  }
}
