import { Queue } from 'bullmq';
import { callShardsOf, type CallShards } from './callShards.js';
import { CALLS_QUEUE } from './queues.js';
import type { RedisClient } from './redisClient.js';

/**
 * The `calls` queue of every call shard under one QUEUE_PREFIX (callShards.ts), each opened on first use: a campaign's
 * dial jobs are on its shard's queue; with one shard (the default) there is only QUEUE_PREFIX's own. `close()` is
 * idempotent and closes every queue opened, each failure left to the caller once all were tried.
 */
export class CallQueues<T = unknown> {
  readonly shards: CallShards;
  private readonly queues = new Map<string, Queue<T>>();
  private closed: Promise<void> | undefined;

  /** `onOpen` hears of each queue as it is opened (to listen to its `error` events, say). */
  constructor(
    private readonly connection: RedisClient,
    prefix: string,
    private readonly onOpen?: (queue: Queue<T>, shardPrefix: string) => void,
  ) {
    this.shards = callShardsOf(prefix);
  }

  /** The job `jobId` (a call id) on whichever shard's queue holds it, or undefined (asked shard by shard, shard 0 first). */
  findJob(jobId: string): ReturnType<Queue<T>['getJob']> {
    return this.all().reduce<ReturnType<Queue<T>['getJob']>>((found, queue) => found.then((job) => job ?? queue.getJob(jobId)), Promise.resolve(undefined));
  }

  /** The queue holding `campaignId`'s dial jobs. */
  forCampaign(campaignId: string): Queue<T> {
    return this.at(this.shards.prefixOf(campaignId));
  }

  /** Every shard's queue, shard 0 (QUEUE_PREFIX's own) first. */
  all(): Array<Queue<T>> {
    return this.shards.prefixes.map((prefix) => this.at(prefix));
  }

  /** QUEUE_PREFIX's own queue (shard 0): where other services push, and where workers are listed. */
  primary(): Queue<T> {
    return this.at(this.shards.prefix);
  }

  private at(prefix: string): Queue<T> {
    let queue = this.queues.get(prefix);
    if (!queue) {
      queue = new Queue<T>(CALLS_QUEUE, { connection: this.connection, prefix });
      this.queues.set(prefix, queue);
      this.onOpen?.(queue, prefix);
    }
    return queue;
  }

  /** Closes every queue opened; rejects with the first failure after trying them all. */
  close(): Promise<void> {
    this.closed ??= Promise.allSettled([...this.queues.values()].map((q) => q.close())).then((settled) => {
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
    });
    return this.closed;
  }
}

/** The `calls` queue holding `campaignId`'s dial jobs: its call shard's, under QUEUE_PREFIX `prefix`. */
export function campaignCallsQueue<T = unknown>(connection: RedisClient, prefix: string, campaignId: string): Queue<T> {
  return new Queue<T>(CALLS_QUEUE, { connection, prefix: callShardsOf(prefix).prefixOf(campaignId) });
}
