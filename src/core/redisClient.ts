import type { Cluster, Redis } from 'ioredis';

/**
 * A connection to the dialer's Redis: one node or a Sentinel-managed primary (`Redis`), or a Redis Cluster
 * (`Cluster`). Both are ioredis Commanders with the same commands, `defineCommand`, pipelines and transactions, and
 * BullMQ takes either. Every key the dialer uses shares the hash tag of a cluster's QUEUE_PREFIX, so each script and
 * transaction stays in one slot. Made by the one connection factory (redisConnection.ts).
 */
export type RedisClient = Redis | Cluster;
