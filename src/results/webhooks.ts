/**
 * Result webhooks: each call's terminal outcome POSTed to its campaign's webhook (the campaign object's `webhook`
 * url and secret) or, for campaigns without one, to RESULTS_WEBHOOK_URL, once per call, retried with
 * backoff until the receiver answers 2xx (redirects are not followed: a 3xx is a failure). Deliveries are BullMQ jobs
 * (id = call id), so they survive restarts and a result applied twice is delivered once; a receiver must still accept
 * a repeat after a timeout it answered too late, deduplicating on the signed body's `callId`.
 */
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { RedisClient } from '../core/redisClient.js';
import type { Campaign } from '../campaigns/campaignSchema.js';
import type { Logger } from '../core/logger.js';
import type { DialerMetrics } from '../core/metrics.js';
import { callResultSchema, type CallResult } from '../core/outcomes.js';
import { signedJsonHeaders } from '../core/signature.js';
import { HOUR, SECOND, type Clock } from '../core/time.js';

/** Internal queue (not part of the outside contract). */
export const WEBHOOKS_QUEUE = 'call-webhooks';
/**
 * 12 attempts with exponential backoff from 2 s (BullMQ: 2^(n-1) × 2 s): the 11 delays add up to 4,094 s, so the last
 * attempt comes about 1 h 8 min after the first (plus up to 10 s per attempt): the replay window README states.
 */
const DELIVERY_ATTEMPTS = 12;
export const FIRST_RETRY_DELAY_MS = 2 * SECOND;
const DELIVERY_TIMEOUT_MS = 10 * SECOND;
/**
 * Finished deliveries (which carry the whole result: transcript, survey answers) are kept this long at most, and never
 * longer than the call's record (RECORD_RETENTION_DAYS). The job id dedupes a late second delivery meanwhile.
 */
const MAX_RETENTION_S = (7 * 24 * HOUR) / SECOND;
const DELIVERY_CONCURRENCY = 8;
const HTTP_OK_MIN = 200;
const HTTP_OK_MAX = 299;
const HTTP_REDIRECT_MIN = 300;
const HTTP_REDIRECT_MAX = 399;

export const WEBHOOK_EVENT = 'call.ended';
export const EVENT_ID_HEADER = 'x-dialer-event-id';

/** Queues the delivery of terminal outcomes (called by the results worker once an outcome is applied). */
export class WebhookOutbox {
  private readonly queue: Queue<CallResult>;
  private readonly retentionS: number;
  private closed = false;

  /**
   * `recordRetentionS`: the records' TTL (0: kept for ever); finished deliveries never outlive it. `firstRetryDelayMs`:
   * the first of the doubling delays between attempts (FIRST_RETRY_DELAY_MS; tests shorten it).
   */
  constructor(
    connection: ConnectionOptions,
    prefix: string,
    recordRetentionS = 0,
    private readonly firstRetryDelayMs = FIRST_RETRY_DELAY_MS,
  ) {
    this.queue = new Queue<CallResult>(WEBHOOKS_QUEUE, { connection, prefix });
    this.retentionS = recordRetentionS > 0 ? Math.min(MAX_RETENTION_S, recordRetentionS) : MAX_RETENTION_S;
  }

  /** Idempotent per call: the job id is the call id. */
  async enqueue(result: CallResult): Promise<void> {
    await this.queue.add(WEBHOOK_EVENT, result, {
      jobId: result.callId,
      attempts: DELIVERY_ATTEMPTS,
      backoff: { type: 'exponential', delay: this.firstRetryDelayMs },
      removeOnComplete: { age: this.retentionS },
      removeOnFail: { age: this.retentionS },
    });
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.close();
  }
}

/** A receiver answered something other than 2xx (a redirect included): BullMQ retries the delivery. */
export class WebhookRejectedError extends Error {
  constructor(readonly status: number) {
    super(
      status >= HTTP_REDIRECT_MIN && status <= HTTP_REDIRECT_MAX
        ? `webhook receiver answered HTTP ${status} (a redirect: not followed, the delivery failed)`
        : `webhook receiver answered HTTP ${status}`,
    );
    this.name = 'WebhookRejectedError';
  }
}

/** Where a call's outcome goes: a URL, and the secret its body is signed with (none: unsigned). */
export interface WebhookDestination {
  url: string;
  secret: string | undefined;
}

/** Finds a campaign's webhook destination (undefined: its outcomes go nowhere). */
export type WebhookRoute = (campaignId: string) => Promise<WebhookDestination | undefined>;

/**
 * The destination rule: the campaign object's `webhook` when it has one (its secret, or none), else the global
 * RESULTS_WEBHOOK_URL / RESULTS_WEBHOOK_SECRET (`fallback`), else none. The document is read at each use, so an
 * edited webhook holds from the next outcome and the next delivery attempt.
 */
export function webhookRoute(campaigns: { get(id: string): Promise<Campaign | undefined> }, fallback: WebhookDestination | undefined): WebhookRoute {
  return async (campaignId) => {
    const own = (await campaigns.get(campaignId))?.webhook;
    return own ? { url: own.url, secret: own.secret } : fallback;
  };
}

/**
 * Delivers queued outcomes to their campaign's destination (`route`), signing each body when it has a secret. A
 * delivery whose campaign has no destination any more (its webhook removed, no global one) completes undelivered.
 */
export function startWebhookWorker(options: {
  connection: RedisClient;
  prefix: string;
  route: WebhookRoute;
  clock: Clock;
  logger: Logger;
  metrics?: DialerMetrics;
}): Worker<CallResult> {
  const { route, clock, logger, metrics } = options;
  const deliver = async (job: Job<CallResult>): Promise<{ status: number } | { skipped: string }> => {
    const result = callResultSchema.parse(job.data);
    const destination = await route(result.campaignId);
    if (!destination) {
      logger.info({ callId: result.callId, campaignId: result.campaignId }, 'webhook not delivered: the campaign has no webhook any more and RESULTS_WEBHOOK_URL is not set');
      return { skipped: 'no webhook' };
    }
    const { url, secret } = destination;
    const body = JSON.stringify({ event: WEBHOOK_EVENT, ...result });
    const headers = { ...signedJsonHeaders(body, String(clock.now()), secret), [EVENT_ID_HEADER]: result.callId };
    // Never follow a redirect: fetch would turn a 302 into a GET without the body (and count it delivered), and
    // re-POST the signed body to whatever origin a 307 names. A 3xx is a failed delivery like any other non-2xx.
    const response = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS) });
    await response.body?.cancel();
    if (response.status < HTTP_OK_MIN || response.status > HTTP_OK_MAX) throw new WebhookRejectedError(response.status);
    metrics?.webhookDeliveries.inc({ result: 'delivered' });
    return { status: response.status };
  };
  const worker = new Worker<CallResult, { status: number } | { skipped: string }>(WEBHOOKS_QUEUE, deliver, {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: DELIVERY_CONCURRENCY,
  });
  worker.on('error', (err) => logger.error({ err }, 'webhook worker error'));
  worker.on('failed', (job, err) => {
    const ids = {
      callId: job?.data.callId,
      campaignId: job?.data.campaignId,
      attempt: job?.attemptsMade,
      status: err instanceof WebhookRejectedError ? err.status : undefined,
    };
    const final = job !== undefined && job.attemptsMade >= (job.opts.attempts ?? 1);
    metrics?.webhookDeliveries.inc({ result: final ? 'given_up' : 'failed' });
    if (final) logger.error({ ...ids, err: err.message }, 'webhook not delivered; attempts used up');
    else logger.warn({ ...ids, err: err.message }, 'webhook delivery failed; BullMQ retries it');
  });
  return worker;
}
