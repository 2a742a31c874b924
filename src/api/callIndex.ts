/**
 * Finds the campaign of a call id. Call records live under their campaign (`{campaign}` hash tag, see core/keys.ts),
 * and CallStore has no lookup by call id alone, so the API keeps a small index of its own: the calls it enqueued, as
 * fields (call id → campaign id) of one hash per week, `<prefix>:api:call-campaign:<week>`, each kept INDEX_KEEP_MS
 * after its week. A batch of 10,000 calls is then ten HSETs in one round trip, and a lookup asks the weeks still kept
 * in one pipeline. Calls enqueued another way (CLI, import, jobs pushed onto `calls`), or whose week expired, are found
 * through their BullMQ job (job id = call id, data carries the campaign) while it is kept, and failing that by asking
 * every campaign of the campaign index whether it holds the call (one pipelined EXISTS per campaign).
 */
import type { CallQueues } from '../core/callQueues.js';
import type { RedisClient } from '../core/redisClient.js';
import type { CallStore } from '../core/callStore.js';
import { DAY, type Clock } from '../core/time.js';

const WEEK_MS = 7 * DAY;
/** 90 days: longer than a call normally lives (starts are at most 90 days ahead); older calls are found by the scan. */
const INDEX_KEEP_MS = 90 * DAY;
/** Weekly hashes a lookup asks: every week whose entries may still be kept. */
const INDEX_WEEKS = Math.ceil(INDEX_KEEP_MS / WEEK_MS) + 1;
/** Fields per HSET, so no single command carries tens of thousands of arguments. */
const HSET_FIELDS = 1000;
/** EXISTS commands per pipeline when scanning campaigns. */
const SCAN_BATCH = 1000;

export class CallCampaignIndex {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly store: CallStore,
    private readonly calls: CallQueues,
    private readonly clock: Clock,
  ) {}

  private week(now: number): number {
    return Math.floor(now / WEEK_MS);
  }

  private key(week: number): string {
    return `${this.prefix}:api:call-campaign:${week}`;
  }

  /** Notes the campaign of calls just enqueued (or found again), in this week's hash; one round trip. */
  async remember(campaignId: string, callIds: readonly string[]): Promise<void> {
    if (callIds.length === 0) return;
    const key = this.key(this.week(this.clock.now()));
    const pipeline = this.redis.pipeline();
    for (let i = 0; i < callIds.length; i += HSET_FIELDS) {
      pipeline.hset(key, ...callIds.slice(i, i + HSET_FIELDS).flatMap((id) => [id, campaignId]));
    }
    // the week's hash outlives its last entry by INDEX_KEEP_MS
    pipeline.pexpire(key, INDEX_KEEP_MS + WEEK_MS);
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  /** The campaign holding a record of `callId`, or undefined when no campaign does. */
  async campaignOf(callId: string): Promise<string | undefined> {
    const indexed = await this.indexed(callId);
    if (indexed !== undefined && (await this.holds(indexed, callId))) return indexed;
    // jobs pushed by other services may carry the guide's snake_case shape
    const data: Record<string, unknown> = ((await this.calls.findJob(callId))?.data as Record<string, unknown> | undefined) ?? {};
    const fromJob = data.campaignId ?? data.campaign_id;
    if (typeof fromJob === 'string' && fromJob !== '' && (await this.holds(fromJob, callId))) return fromJob;
    return this.scan(callId);
  }

  /** The campaign the newest week that noted `callId` gives, asking every kept week in one pipeline. */
  private async indexed(callId: string): Promise<string | undefined> {
    const current = this.week(this.clock.now());
    const pipeline = this.redis.pipeline();
    for (let w = 0; w < INDEX_WEEKS; w++) pipeline.hget(this.key(current - w), callId);
    const replies = (await pipeline.exec()) ?? [];
    for (const [err, campaignId] of replies) {
      if (err) throw err;
      if (typeof campaignId === 'string') return campaignId;
    }
    return undefined;
  }

  private async holds(campaignId: string, callId: string): Promise<boolean> {
    return (await this.redis.exists(this.store.keys.callRecord(campaignId, callId))) === 1;
  }

  private async scan(callId: string): Promise<string | undefined> {
    // one pipeline per call shard: on a cluster the shards' records live in different slots, often on other masters,
    // and a pipeline spanning them is refused
    const byShard = new Map<string, string[]>();
    for (const campaignId of await this.store.campaigns()) {
      const shard = this.calls.shards.prefixOf(campaignId);
      const campaigns = byShard.get(shard);
      if (campaigns) campaigns.push(campaignId);
      else byShard.set(shard, [campaignId]);
    }
    for (const campaigns of byShard.values()) {
      const found = await this.scanShard(campaigns, callId);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** The campaign among `campaigns` (all of one call shard) holding a record of `callId`. */
  private async scanShard(campaigns: readonly string[], callId: string): Promise<string | undefined> {
    for (let i = 0; i < campaigns.length; i += SCAN_BATCH) {
      const batch = campaigns.slice(i, i + SCAN_BATCH);
      const pipeline = this.redis.pipeline();
      for (const campaignId of batch) pipeline.exists(this.store.keys.callRecord(campaignId, callId));
      const replies = (await pipeline.exec()) ?? [];
      for (let n = 0; n < batch.length; n++) {
        const [err, found] = replies[n] ?? [];
        if (err) throw err;
        if (found === 1) return batch[n];
      }
    }
    return undefined;
  }
}
