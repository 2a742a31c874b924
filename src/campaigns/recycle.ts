/**
 * A campaign's recycle rule (issue 12 §2), as classic dialers recycle leads by status: when one of its calls ends with
 * an outcome the rule names (e.g. `no_answer` after its retries), the same number is called again `after_s` later,
 * as a new call, up to `max_series` series in all (the first one included).
 *
 * Applied by the results worker once the outcome is the call's (resultsWorker.ts), so every way a call ends counts
 * and nothing is recycled twice: the new call's idempotency key is `recycle:<first call id>:<series>`, so a result
 * processed again (a retried job) finds the call already made. The key also carries the series, so a recycled call's
 * own end knows how many came before it. Each series is a call of its own in reports and exports; it takes the
 * number, extension, metadata, agent profile, calling window and priority of the call it follows (the last three from
 * its dial job while BullMQ keeps it, else the campaign's or the global ones). Nothing is recycled once the campaign
 * is canceled, archived or past its end, nor when the new time would be past `ends_at`.
 */
import { CallQueues } from '../core/callQueues.js';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore } from '../core/callStore.js';
import { callWindowSchema } from '../core/callWindow.js';
import { InvalidInputError } from '../core/errors.js';
import type { CallResult } from '../core/outcomes.js';
import { callMetadataSchema } from '../core/queues.js';
import { SECOND, type Clock } from '../core/time.js';
import type { CallProducer, CallRequest } from '../producer/enqueueCalls.js';
import { campaignStatus, type Campaign } from './campaignSchema.js';

/** The key prefix of recycled calls. */
export const RECYCLE_KEY_PREFIX = 'recycle:';
const RECYCLE_KEY = /^recycle:(.+):(\d+)$/;

/** The key of series `series` (2, 3, …) of the call first enqueued as `rootCallId`. */
export function recycleKey(rootCallId: string, series: number): string {
  return `${RECYCLE_KEY_PREFIX}${rootCallId}:${series}`;
}

/** Which series a call is, and its first call: from its recycle key, else series 1 of itself. */
export function seriesOf(callId: string, key: string | undefined): { root: string; series: number } {
  const match = key === undefined ? null : RECYCLE_KEY.exec(key);
  return match?.[1] && match[2] ? { root: match[1], series: Number(match[2]) } : { root: callId, series: 1 };
}

/** What the rule decided for an ended call. */
export type RecycleDecision =
  | { status: 'recycled'; callId: string; series: number; at: number; duplicate: boolean }
  | { status: 'none'; why: string };

/** Applies campaigns' recycle rules to ended calls (see the file's comment). */
export class CallRecycler {
  private readonly store: CallStore;
  private readonly calls: CallQueues;
  private closing: Promise<void> | undefined;

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly campaigns: { get(id: string): Promise<Campaign | undefined> },
    private readonly producer: CallProducer,
    private readonly clock: Clock,
  ) {
    this.store = new CallStore(redis, prefix, clock);
    this.calls = new CallQueues(redis, prefix);
  }

  /** After `result` became its call's outcome: enqueues the next series when the campaign's rule asks for one. */
  async afterEnd(result: CallResult): Promise<RecycleDecision> {
    const campaign = await this.campaigns.get(result.campaignId);
    const rule = campaign?.recycle;
    if (!campaign || !rule) return { status: 'none', why: 'no recycle rule' };
    if (!rule.outcomes.some((o) => o === result.outcome)) return { status: 'none', why: `${result.outcome} is not recycled` };
    const status = campaignStatus(campaign, this.clock.now());
    if (status === 'canceled' || status === 'archived' || status === 'expired') return { status: 'none', why: `campaign ${status}` };
    const [record, keys] = await Promise.all([
      this.store.get(result.campaignId, result.callId),
      this.store.idempotencyKeys(result.campaignId, [result.callId]),
    ]);
    if (!record) return { status: 'none', why: 'no record' };
    const { root, series } = seriesOf(result.callId, keys.get(result.callId));
    if (series >= rule.max_series) return { status: 'none', why: `series ${series} of ${rule.max_series}` };
    const at = result.endedAt + rule.after_s * SECOND;
    if (campaign.ends_at && at >= Date.parse(campaign.ends_at)) return { status: 'none', why: 'the next series would start after the campaign ends' };

    const metadata = callMetadataSchema.safeParse(record.metadata);
    if (!metadata.success) return { status: 'none', why: 'not recycled: its metadata is not flat' };
    const request: CallRequest = { phoneNumber: record.phoneNumber, campaignId: result.campaignId, metadata: metadata.data, key: recycleKey(root, series + 1), notBefore: at };
    // what the dial job carried that the record does not (while BullMQ keeps the finished job)
    const job = await this.calls.forCampaign(result.campaignId).getJob(result.callId);
    const data: Record<string, unknown> = job?.data && typeof job.data === 'object' ? (job.data as Record<string, unknown>) : {};
    if (typeof data.agentProfile === 'string' && data.agentProfile) request.agentProfile = data.agentProfile;
    const window = callWindowSchema.safeParse(data.callWindow);
    if (window.success) request.callWindow = window.data;
    if (job?.opts.priority) request.priority = job.opts.priority;
    try {
      const { callId, duplicate } = await this.producer.enqueueCall(request);
      return { status: 'recycled', callId, series: series + 1, at, duplicate };
    } catch (err) {
      // a number or metadata the producer refuses now (e.g. a call another service pushed in a form only the
      // consumer reads): this call is not recycled; the caller logs why
      if (err instanceof InvalidInputError) return { status: 'none', why: `not recycled: ${err.message}` };
      throw err;
    }
  }

  /** Idempotent. */
  async close(): Promise<void> {
    this.closing ??= this.calls.close();
    await this.closing;
  }
}
