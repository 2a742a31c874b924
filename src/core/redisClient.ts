import type { Cluster, Redis } from 'ioredis';

/**
 * A connection to the dialer's Redis: one node or a Sentinel-managed primary (`Redis`), or a Redis Cluster
 * (`Cluster`). Both are ioredis Commanders with the same commands, `defineCommand`, pipelines and transactions, and
 * BullMQ takes either. Every key the dialer uses shares the hash tag of a cluster's QUEUE_PREFIX, so each script and
 * transaction stays in one slot. Made by the one connection factory (redisConnection.ts).
 */
export type RedisClient = Redis | Cluster;

/** How many times a connection has been made again, counted from the first call of `connectionGeneration` on it. */
const readyCounts = new WeakMap<RedisClient, { count: number }>();

/**
 * A counter of the times `redis` was made ready again (ioredis' `ready` event after the first: every reconnection, to
 * the same server or, through Sentinel, to another one; a Cluster client emits it only when the whole cluster
 * connection is made again, not when a slot moves). Read it before a write and after
 * the check that the write is safe: a different value means the connection was made again in between, so the write
 * may have gone to a server that is gone, e.g. a primary that died before replicating it, and the check ran on its
 * promoted replica, which never saw it. One listener per connection, however many callers ask; call it once before
 * the first write so that no reconnection goes uncounted.
 */
export function connectionGeneration(redis: RedisClient): { readonly count: number } {
  let counter = readyCounts.get(redis);
  if (!counter) {
    const created = { count: 0 };
    // the first connection is not a reconnection: a write queued before it goes to the server it reaches
    let connectedBefore = redis.status === 'ready';
    redis.on('ready', () => {
      if (connectedBefore) created.count += 1;
      connectedBefore = true;
    });
    readyCounts.set(redis, created);
    counter = created;
  }
  return counter;
}
