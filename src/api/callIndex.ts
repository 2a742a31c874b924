/**
 * Finds the campaign of a call id. Call records live under their campaign (`{campaign}` hash tag, see core/keys.ts),
 * and CallStore has no lookup by call id alone, so the API keeps a small index of its own: one key per call it
 * enqueued, `<prefix>:api:call-campaign:<callId>` → campaign id, written right after the enqueue and kept
 * INDEX_TTL_S. Calls enqueued another way (CLI, import, jobs pushed onto `calls`), or whose entry expired, are found
 * through their BullMQ job (job id = call id, data carries the campaign) while it is kept, and failing that by asking
 * every campaign of the campaign index whether it holds the call (one pipelined EXISTS per campaign).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CallStore } from '../core/callStore.js';

/** 90 days: longer than a call normally lives; an older call is still found by the campaign scan. */
const INDEX_TTL_S = 90 * 24 * 60 * 60;
/** EXISTS commands per pipeline when scanning campaigns. */
const SCAN_BATCH = 1000;

export class CallCampaignIndex {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly store: CallStore,
    private readonly calls: Queue<Record<string, unknown>>,
  ) {}

  private key(callId: string): string {
    return `${this.prefix}:api:call-campaign:${callId}`;
  }

  /** Notes the campaign of calls just enqueued (or found again); one pipeline. */
  async remember(campaignId: string, callIds: readonly string[]): Promise<void> {
    if (callIds.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const id of callIds) pipeline.set(this.key(id), campaignId, 'EX', INDEX_TTL_S);
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  /** The campaign holding a record of `callId`, or undefined when no campaign does. */
  async campaignOf(callId: string): Promise<string | undefined> {
    const indexed = await this.redis.get(this.key(callId));
    if (indexed !== null && (await this.holds(indexed, callId))) return indexed;
    // jobs pushed by other services may carry the guide's snake_case shape
    const data: Record<string, unknown> = (await this.calls.getJob(callId))?.data ?? {};
    const fromJob = data.campaignId ?? data.campaign_id;
    if (typeof fromJob === 'string' && fromJob !== '' && (await this.holds(fromJob, callId))) return fromJob;
    return this.scan(callId);
  }

  private async holds(campaignId: string, callId: string): Promise<boolean> {
    return (await this.redis.exists(this.store.keys.callRecord(campaignId, callId))) === 1;
  }

  private async scan(callId: string): Promise<string | undefined> {
    const campaigns = await this.store.campaigns();
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
