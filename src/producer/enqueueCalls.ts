import type { ConnectionOptions, JobsOptions } from 'bullmq';
import type { CountryCode } from 'libphonenumber-js';
import type { RedisClient } from '../core/redisClient.js';
import { z } from 'zod';
import { callWindowSchema } from '../core/callWindow.js';
import { CallStore, recordNumber, type CreateStatus } from '../core/callStore.js';
import { CallQueues } from '../core/callQueues.js';
import { DEFAULT_DIAL_MAX_ATTEMPTS, DEFAULT_QUEUE_PREFIX, DEFAULT_REDIS_URL, loadConfig } from '../core/config.js';
import { InvalidInputError } from '../core/errors.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { PhoneNumberError, isRegion, parsePhoneNumber, parseRegion } from '../core/phone.js';
import {
  DEFAULT_CAMPAIGN_ID,
  callMetadataSchema,
  idSchema,
  type CallJob,
} from '../core/queues.js';
import { systemClock, type Clock } from '../core/time.js';
import { hasProfile, loadProfileCatalog, unknownProfileMessage, type ProfileCatalog } from '../agent/profiles.js';
import { campaignEnqueueSettings, type CampaignEnqueueSettings } from '../campaigns/campaignRegion.js';
import { keyedCallId, newCallId, phoneNumberKey } from './callIds.js';
import { InFlight } from './inFlight.js';
import { MAX_CALL_PRIORITY, MAX_KEY_LENGTH, fastCheckedRequest, type CheckedRequest } from './requestFastPath.js';

/**
 * Calls per addBulk: big enough to amortise round trips, small enough to keep Redis responsive — and small enough
 * that a chunk's objects mostly die young: with 3 chunks of 1,000 in flight, more of them outlived two scavenges and
 * were promoted, and garbage collection took about 10 % more CPU per call (bench:enqueue, 60,000–100,000 calls).
 */
export const ENQUEUE_CHUNK_SIZE = 500;
/**
 * Chunks in flight at once, so validating the next chunks overlaps Redis working on the previous ones and the two
 * round trips of each chunk (records, then jobs) overlap other chunks' waits. bench:enqueue, 100,000 calls, 2
 * December 2026, quiet (load 0.9): ours / raw addBulk 0.95 with 2 in flight, 1.23 with 3, 1.27 with 4; beside two
 * CPU hogs: 1.00–1.03 with 2, 1.11–1.17 with 4. More in flight costs about 5 % more CPU per call here (more of each
 * chunk outlives a scavenge), which the overlap more than pays for.
 */
const CHUNKS_IN_FLIGHT = 4;
/** Completed dial jobs kept for inspection; the call record keeps the history for good. */
const COMPLETED_JOB_RETENTION_S = 24 * 60 * 60;
const FAILED_JOB_RETENTION_S = 7 * 24 * 60 * 60;
export { MAX_CALL_PRIORITY };

/** One call a producer asks for (the library's edge: validated here). */
export const callRequestSchema = z.object({
  /** As people write it: E.164, international, or national with a region; an extension (x136, ;ext=136) is kept. */
  phoneNumber: z.string().min(1, 'phone number is empty'),
  /** Country of a number written without a country code (ISO 3166-1 alpha-2, e.g. US); else the producer's default. */
  region: z.string().refine(isRegion, 'region must be a two-letter country code such as US, GB or DE').optional(),
  campaignId: idSchema.optional(),
  metadata: callMetadataSchema.optional(),
  /** Idempotency key: the same key within a campaign enqueues once. */
  key: z.string().min(1).max(MAX_KEY_LENGTH).optional(),
  /** Without a key, key the call by its normalised number instead: a number is enqueued once per campaign. */
  dedupeByNumber: z.boolean().optional(),
  /** Start no earlier than this (epoch ms or Date). */
  notBefore: z.union([z.date(), z.number().int().positive()]).optional(),
  /** Dial no later than this: an undialed call then ends as `expired`. */
  expiresAt: z.union([z.date(), z.number().int().positive()]).optional(),
  agentProfile: z.string().min(1).optional(),
  /** Local hours (and weekdays) the call may ring, in the callee's time zone. */
  callWindow: callWindowSchema.optional(),
  /**
   * 0 (default) is dialed first; 1 … MAX_CALL_PRIORITY wait behind every priority-0 call, lower numbers first
   * (BullMQ priorities): give bulk campaigns a number so reminders pushed later still go out first.
   */
  priority: z.number().int().min(0).max(MAX_CALL_PRIORITY).optional(),
});
export type CallRequest = z.input<typeof callRequestSchema>;

type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** The fast path returns zod's output type exactly: a field added to the schema fails to compile until it reads it. */
const fastPathMatchesSchema: Same<CheckedRequest, z.output<typeof callRequestSchema>> = true;
void fastPathMatchesSchema;

export interface EnqueueOptions {
  connection: ConnectionOptions & RedisClient;
  prefix: string;
  maxAttempts: number;
  clock?: Clock;
  /**
   * Country of numbers written without a country code, for requests without a region whose campaign has no
   * `default_region` (DIAL_DEFAULT_REGION).
   */
  defaultRegion?: CountryCode;
  /**
   * How the edge using this producer names where a default region is given (REGION_SOURCES in core/phone.ts), for the
   * refusal of a number without a country code; the setting's name by default.
   */
  regionSources?: string;
  /** Called after each chunk with the number of calls handled so far. */
  onProgress?: (done: number) => void;
  /**
   * The agent's profile catalog, or how to read it (called at most once, and only when a call names a profile): a
   * call naming a profile it lacks is rejected like a bad number. Without it, profile names are not checked. The
   * library's enqueueCalls/enqueueCall read the agent's catalog (AGENT_PROFILES_FILE) unless given one.
   */
  profiles?: ProfileCatalog | (() => Promise<ProfileCatalog>);
}

/**
 * A keyed call refused because its key already names a call with another number or metadata. `reason` (the
 * summary's) shows the stored call's id, number or metadata; `withoutStored` says the same conflict without them, for
 * a caller not allowed to read stored calls (an API token without the `read` scope).
 */
export interface KeyConflict {
  /** What differs from the call the key names. */
  field: 'number' | 'metadata';
  withoutStored: string;
}

export interface EnqueueSummary {
  enqueued: { index: number; callId: string }[];
  duplicates: { index: number; callId: string }[];
  rejected: { index: number; reason: string; keyConflict?: KeyConflict }[];
}

interface PreparedCall {
  index: number;
  job: CallJob;
  delayMs: number;
  priority: number;
  /** The caller's idempotency key, when it gave one: re-using it for another number or metadata is refused. */
  key?: string;
}

/** Same flat metadata, whatever the key order. */
function sameMetadata(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** A rejected call: why (with the stored call's details) and, as a KeyConflict, the same without them. */
type KeyConflictRejection = { reason: string; keyConflict: KeyConflict };

/**
 * Why a keyed call conflicts with the call its key already names (a different number or metadata), as idempotency
 * keys work in payment APIs: the same request gets the same call, a different one under the same key is refused.
 */
function keyConflict(call: PreparedCall, existing: { phoneNumber: string; metadata: Record<string, unknown> }): KeyConflictRejection | undefined {
  const number = recordNumber(call.job);
  const field = existing.phoneNumber !== number ? 'number' : sameMetadata(existing.metadata, call.job.metadata) ? undefined : 'metadata';
  if (field === undefined) return undefined;
  const what = field === 'number' ? `number ${existing.phoneNumber}, not ${number}` : `metadata ${JSON.stringify(existing.metadata)}, not ${JSON.stringify(call.job.metadata)}`;
  const key = JSON.stringify(call.key);
  const fix = 'use a new key for a different call';
  return {
    reason: `key ${key} already names call ${call.job.callId} in campaign ${call.job.campaignId} with ${what}: ${fix}`,
    keyConflict: { field, withoutStored: `key ${key} already names another call in campaign ${call.job.campaignId}, with a different ${field}: ${fix}` },
  };
}

const toMs = (v: Date | number | undefined) => (v instanceof Date ? v.getTime() : v);

/** The request as callRequestSchema outputs it: the fast path when it is plainly valid, else zod (and its errors). */
function checkedRequest(request: CallRequest): CheckedRequest {
  const fast = fastCheckedRequest(request);
  if (fast) return fast;
  const parsed = callRequestSchema.safeParse(request);
  if (!parsed.success) {
    throw new InvalidInputError(parsed.error.issues.map((i) => `${i.path.join('.') || 'call'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

function prepare(request: CallRequest, index: number, now: number, defaultRegion: CountryCode | undefined, regionSources: string | undefined): PreparedCall {
  const r = checkedRequest(request);
  const campaignId = r.campaignId ?? DEFAULT_CAMPAIGN_ID;
  const number = parsePhoneNumber(r.phoneNumber, r.region === undefined ? defaultRegion : parseRegion(r.region), regionSources);
  const notBefore = toMs(r.notBefore);
  // an extension is part of the identity: two extensions of one line are two calls
  const key = r.key ?? (r.dedupeByNumber ? phoneNumberKey(number.e164, number.extension) : undefined);
  const job: CallJob = {
    callId: key ? keyedCallId(campaignId, key) : newCallId(),
    campaignId,
    phoneNumber: number.e164,
    extension: number.extension,
    metadata: r.metadata ?? {},
    agentProfile: r.agentProfile,
    enqueuedAt: now,
    expiresAt: toMs(r.expiresAt),
    callWindow: r.callWindow,
  };
  return { index, job, delayMs: notBefore ? Math.max(0, notBefore - now) : 0, priority: r.priority ?? 0, key: r.key };
}

/**
 * Why `call` cannot be taken by a campaign ending at `endsAt` (epoch ms; undefined: no end), at `now`: the campaign has
 * already ended (a call starting now or later would only end `expired`), or the call's start time comes after the end.
 * Undefined when it may be enqueued.
 */
function campaignEndRefusal(call: PreparedCall, endsAt: number | undefined, now: number): string | undefined {
  if (endsAt === undefined) return undefined;
  const campaignId = call.job.campaignId;
  if (endsAt <= now) return `campaign ${campaignId} ended at ${new Date(endsAt).toISOString()}`;
  if (call.delayMs > 0 && now + call.delayMs > endsAt) {
    return `its start time (${new Date(now + call.delayMs).toISOString()}) is after campaign ${campaignId} ends (${new Date(endsAt).toISOString()})`;
  }
  return undefined;
}

/**
 * BullMQ options of a dial job (exported so the enqueue bench gives raw addBulk exactly the same). `enqueuedAt` (epoch
 * ms) is the instant `delayMs` was counted from: BullMQ makes a delayed job due at its `timestamp` + `delay`
 * (getDelayedScore.lua), and its own `Date.now()` at add time would move a requested start time by however long the
 * batch took to prepare.
 */
export function jobOptions(callId: string, delayMs: number, maxAttempts: number, priority = 0, enqueuedAt?: number): JobsOptions {
  return {
    jobId: callId,
    timestamp: enqueuedAt,
    delay: delayMs || undefined,
    priority: priority || undefined,
    attempts: maxAttempts,
    backoff: { type: 'dial' },
    removeOnComplete: { age: COMPLETED_JOB_RETENTION_S },
    removeOnFail: { age: FAILED_JOB_RETENTION_S },
  };
}

/**
 * Enqueues calls on `calls`: validates each (bad ones are rejected, the rest go on), creates their records
 * in state `queued`, then adds the jobs with addBulk in chunks. Job id = call id, so a repeated key enqueues once.
 * Keep one producer per process; `close()` is idempotent.
 */
export class CallProducer {
  private readonly clock: Clock;
  private readonly store: CallStore;
  /** The `calls` queue of each call shard a call went to (callShards.ts; QUEUE_PREFIX's own with one shard). */
  private readonly queues: CallQueues<CallJob>;
  private catalog: Promise<ProfileCatalog> | undefined;
  private closed = false;

  constructor(private readonly options: EnqueueOptions) {
    this.clock = options.clock ?? systemClock;
    this.store = new CallStore(options.connection, options.prefix, this.clock);
    this.queues = new CallQueues<CallJob>(options.connection, options.prefix);
  }

  /** The profile catalog when one was configured and a request names a profile; read once. Throws ConfigError. */
  private async profilesFor(requests: readonly CallRequest[]): Promise<ProfileCatalog | undefined> {
    const source = this.options.profiles;
    if (source === undefined || !requests.some((r) => typeof r.agentProfile === 'string')) return undefined;
    this.catalog ??= typeof source === 'function' ? source() : Promise.resolve(source);
    return this.catalog;
  }

  /**
   * Enqueues many calls; one bad call (bad number, metadata, or a profile the catalog lacks) is rejected with its
   * index and reason, the others go on. Throws ConfigError when the profile catalog cannot be read.
   */
  async enqueueCalls(requests: readonly CallRequest[], onProgress?: (done: number) => void): Promise<EnqueueSummary> {
    const profiles = await this.profilesFor(requests);
    const campaigns = await this.campaignSettingsFor(requests);
    const summary: EnqueueSummary = { enqueued: [], duplicates: [], rejected: [] };
    let done = 0;
    const inFlight = new InFlight(CHUNKS_IN_FLIGHT);
    for (let start = 0; start < requests.length; start += ENQUEUE_CHUNK_SIZE) {
      const chunk = requests.slice(start, start + ENQUEUE_CHUNK_SIZE);
      const started = await inFlight.run(async () => {
        await this.enqueueChunk(chunk, start, summary, profiles, campaigns);
        done += chunk.length;
        onProgress?.(done);
      });
      if (!started) break;
    }
    // Every chunk already sent settles before this returns or throws, so none is still writing afterwards.
    await inFlight.drain();
    const byIndex = (a: { index: number }, b: { index: number }) => a.index - b.index;
    summary.enqueued.sort(byIndex);
    summary.duplicates.sort(byIndex);
    summary.rejected.sort(byIndex);
    return summary;
  }

  /**
   * The `default_region` and `ends_at` of the requests' campaigns, read in one round trip per batch: every call needs its
   * campaign's end (one already ended takes no call, one ending takes no start after it).
   */
  private async campaignSettingsFor(requests: readonly CallRequest[]): Promise<Map<string, CampaignEnqueueSettings>> {
    const ids = new Set<string>();
    for (const r of requests) ids.add(r.campaignId ?? DEFAULT_CAMPAIGN_ID);
    return campaignEnqueueSettings(this.options.connection, this.options.prefix, ids);
  }

  /** Enqueues one call and returns its id; throws InvalidInputError for a bad number or metadata. */
  async enqueueCall(request: CallRequest): Promise<{ callId: string; duplicate: boolean }> {
    const summary = await this.enqueueCalls([request]);
    const rejected = summary.rejected[0];
    if (rejected) throw new InvalidInputError(rejected.reason);
    const entry = summary.enqueued[0] ?? summary.duplicates[0];
    if (!entry) throw new Error('enqueueCall: the call was neither enqueued nor found');
    return { callId: entry.callId, duplicate: summary.enqueued.length === 0 };
  }

  private async enqueueChunk(
    chunk: readonly CallRequest[],
    offset: number,
    summary: EnqueueSummary,
    profiles: ProfileCatalog | undefined,
    campaigns: ReadonlyMap<string, CampaignEnqueueSettings>,
  ): Promise<void> {
    const now = this.clock.now();
    const byCampaign = new Map<string, PreparedCall[]>();
    const seen = new Map<string, PreparedCall>();
    const endRefused: { call: PreparedCall; reason: string }[] = [];
    chunk.forEach((request, i) => {
      const index = offset + i;
      // A profile the agent does not have would ring the phone only to hang up on the callee: refused here.
      const profile = request.agentProfile;
      if (profiles && typeof profile === 'string' && !hasProfile(profiles, profile)) {
        summary.rejected.push({ index, reason: unknownProfileMessage(profiles, profile) });
        return;
      }
      let call: PreparedCall;
      try {
        call = prepare(request, index, now, campaigns.get(request.campaignId ?? DEFAULT_CAMPAIGN_ID)?.region ?? this.options.defaultRegion, this.options.regionSources);
      } catch (err) {
        if (!(err instanceof InvalidInputError)) throw err;
        // the caller gave this input: show it as given (PhoneNumberError.message masks it for logs)
        summary.rejected.push({ index, reason: err instanceof PhoneNumberError ? err.forPerson : err.message });
        return;
      }
      // a call to a campaign already ended, or starting after its end, would only end `expired` then
      const refusal = campaignEndRefusal(call, campaigns.get(call.job.campaignId)?.endsAt, now);
      if (refusal !== undefined) {
        endRefused.push({ call, reason: refusal });
        return;
      }
      admit(call);
    });
    // A call already on record (a keyed call, or an import row keyed by its number, sent again) is a retry of the
    // request that made it: it gets that call (or its key conflict) as before the end, not the refusal (README,
    // Idempotency). Only calls that would be new are refused.
    const onRecord = await this.recordsExist(endRefused.map((r) => r.call));
    endRefused.forEach(({ call, reason }, i) => {
      if (onRecord[i]) admit(call);
      else summary.rejected.push({ index: call.index, reason });
    });
    function admit(call: PreparedCall): void {
      const first = seen.get(call.job.callId);
      if (first) {
        const conflict = call.key === undefined ? undefined : keyConflict(call, { phoneNumber: recordNumber(first.job), metadata: first.job.metadata });
        if (conflict) summary.rejected.push({ index: call.index, ...conflict });
        else summary.duplicates.push({ index: call.index, callId: call.job.callId });
        return;
      }
      seen.set(call.job.callId, call);
      const list = byCampaign.get(call.job.campaignId) ?? [];
      list.push(call);
      byCampaign.set(call.job.campaignId, list);
    }
    for (const [campaignId, calls] of byCampaign) {
      // a keyed call's record keeps its key (CallStore.IDEMPOTENCY_KEY_FIELD) so exports can give it back: the call id
      // is a hash of it. createCalls.lua writes it only on the records it creates, so a call that may since have ended
      // and been purged is never recreated by it.
      const statuses: CreateStatus[] = await this.store.createCalls(
        campaignId,
        calls.map((c) => ({ callId: c.job.callId, phoneNumber: c.job.phoneNumber, extension: c.job.extension, metadata: c.job.metadata, idempotencyKey: c.key })),
      );
      const conflicts = await this.keyConflicts(campaignId, calls, statuses);
      // A record still `queued` may have lost its job in a crash between these two steps: adding it again is safe.
      const toAdd = calls.filter((_, i) => statuses[i] !== 'past_queued' && !conflicts.has(i));
      await this.queues.forCampaign(campaignId).addBulk(toAdd.map((c) => ({ name: 'dial', data: c.job, opts: jobOptions(c.job.callId, c.delayMs, this.options.maxAttempts, c.priority, c.job.enqueuedAt) })));
      calls.forEach((c, i) => {
        const conflict = conflicts.get(i);
        if (conflict) summary.rejected.push({ index: c.index, ...conflict });
        else (statuses[i] === 'created' ? summary.enqueued : summary.duplicates).push({ index: c.index, callId: c.job.callId });
      });
    }
  }

  /** Whether each call's record exists: one pipeline per call shard (none sent for an empty list). */
  private async recordsExist(calls: readonly PreparedCall[]): Promise<boolean[]> {
    const exists: boolean[] = calls.map(() => false);
    const byShard = new Map<string, number[]>();
    calls.forEach((call, i) => {
      const prefix = this.queues.shards.prefixOf(call.job.campaignId);
      const positions = byShard.get(prefix);
      if (positions) positions.push(i);
      else byShard.set(prefix, [i]);
    });
    for (const positions of byShard.values()) {
      const pipeline = this.options.connection.pipeline();
      for (const i of positions) {
        const call = calls[i];
        if (call) pipeline.exists(this.store.keys.callRecord(call.job.campaignId, call.job.callId));
      }
      const replies = (await pipeline.exec()) ?? [];
      positions.forEach((i, n) => {
        const [err, count] = replies[n] ?? [];
        if (err) throw err;
        exists[i] = count === 1;
      });
    }
    return exists;
  }

  /** Keyed calls whose record already existed with another number or metadata, by position in `calls`, with why. */
  private async keyConflicts(campaignId: string, calls: readonly PreparedCall[], statuses: readonly CreateStatus[]): Promise<Map<number, KeyConflictRejection>> {
    const conflicts = new Map<number, KeyConflictRejection>();
    const existing: number[] = [];
    calls.forEach((c, i) => {
      if (statuses[i] !== 'created' && c.key !== undefined) existing.push(i);
    });
    if (existing.length === 0) return conflicts;
    const pipeline = this.options.connection.pipeline();
    for (const i of existing) {
      const call = calls[i];
      if (call) pipeline.hmget(this.store.keys.callRecord(campaignId, call.job.callId), 'phoneNumber', 'metadata');
    }
    const replies = (await pipeline.exec()) ?? [];
    existing.forEach((i, n) => {
      const [err, fields] = replies[n] ?? [];
      if (err) throw err;
      const [phoneNumber, metadata] = (fields as (string | null)[] | undefined) ?? [];
      const call = calls[i];
      if (!call || phoneNumber == null) return;
      const conflict = keyConflict(call, { phoneNumber, metadata: JSON.parse(metadata ?? '{}') as Record<string, unknown> });
      if (conflict) conflicts.set(i, conflict);
    });
    return conflicts;
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queues.close();
  }
}

/** Options of the library entry points: anything left out comes from the environment (REDIS_URL, QUEUE_PREFIX, DIAL_MAX_ATTEMPTS). */
export type LibraryEnqueueOptions = Partial<EnqueueOptions> & { redisUrl?: string };

/** Runs `body` with a short-lived producer built from `options`, filling gaps from the environment. */
async function withProducer<T>(options: LibraryEnqueueOptions, body: (producer: CallProducer) => Promise<T>): Promise<T> {
  const needsConfig = !options.connection || options.prefix === undefined || options.maxAttempts === undefined;
  const config = needsConfig ? loadConfig(process.env) : undefined;
  const connection = options.connection ?? createProducerConnection(options.redisUrl ?? config?.redis ?? DEFAULT_REDIS_URL);
  const producer = new CallProducer({
    ...options,
    profiles: options.profiles ?? (() => loadProfileCatalog(process.env)),
    connection,
    defaultRegion: options.defaultRegion ?? config?.dial.defaultRegion,
    prefix: options.prefix ?? config?.queuePrefix ?? DEFAULT_QUEUE_PREFIX,
    maxAttempts: options.maxAttempts ?? config?.dial.maxAttempts ?? DEFAULT_DIAL_MAX_ATTEMPTS,
  });
  try {
    if (!options.connection) await waitUntilReady(connection);
    return await body(producer);
  } finally {
    await producer.close();
    if (!options.connection) await closeConnection(connection);
  }
}

/** Library entry point: enqueues many calls (bad ones are rejected with their index and reason, the rest go on). */
export async function enqueueCalls(requests: readonly CallRequest[], options: LibraryEnqueueOptions = {}): Promise<EnqueueSummary> {
  return withProducer(options, (producer) => producer.enqueueCalls(requests, options.onProgress));
}

/** Library entry point: enqueues one call (a request, or just a phone number) and returns its id. */
export async function enqueueCall(
  request: CallRequest | string,
  options: LibraryEnqueueOptions = {},
): Promise<{ callId: string; duplicate: boolean }> {
  return withProducer(options, (producer) => producer.enqueueCall(typeof request === 'string' ? { phoneNumber: request } : request));
}
