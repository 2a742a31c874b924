import { Redis, type RedisOptions } from 'ioredis';

/** Connection for BullMQ workers: blocking commands must wait out Redis restarts, never give up mid-job. */
export function createWorkerConnection(redisUrl: string, extra: RedisOptions = {}): Redis {
  return new Redis(redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra });
}

/** Connection for producers and commands: fail fast instead of queueing writes while Redis is away. */
export function createProducerConnection(redisUrl: string, extra: RedisOptions = {}): Redis {
  return new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false, ...extra });
}

/** Resolves once the connection is ready (a producer connection without an offline queue must wait for it). */
export async function waitUntilReady(connection: Redis): Promise<void> {
  if (connection.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const onReady = () => {
      connection.off('error', onError);
      resolve();
    };
    const onError = (err: Error) => {
      connection.off('ready', onReady);
      reject(err);
    };
    connection.once('ready', onReady);
    connection.once('error', onError);
  });
}

/** Closes a connection whatever state it is in; never throws. */
export async function closeConnection(connection: Redis): Promise<void> {
  try {
    if (connection.status === 'end') return;
    await connection.quit();
  } catch {
    connection.disconnect();
  }
}
