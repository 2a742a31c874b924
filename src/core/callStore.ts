import { connectionGeneration, type RedisClient } from './redisClient.js';
import { ActiveCallLeases, INBOUND_LEASE_TTL_MS } from './activeCallLeases.js';
import { callShardsOf, type CallShards } from './callShards.js';
import { dialerKeys, type DialerKeys } from './keys.js';
import { LuaScript, replies, type ScriptArg } from './luaScript.js';
import { formatPhoneNumber } from './phone.js';
import type { CallJob } from './queues.js';
import { CALL_STATES, CONNECTED_OUTCOMES, OUTCOMES, type CallResult, type CallState, type Outcome, type TerminalApplied, type TerminalTransition } from './outcomes.js';
import { closedForGood, isRedisConnectionError } from './redisConnection.js';
import { MINUTE, SECOND, type Clock } from './time.js';

/** One dial attempt as kept in the call record. */
export interface AttemptEntry {
  attempt: number;
  room: string;
  startedAt: number;
  endedAt?: number;
  result?: string;
  /** For a failed attempt: whether it could be retried (`retry`) or ended the call (`final`). */
  kind?: 'retry' | 'final';
  reason?: string;
  sipStatusCode?: number;
  sipStatus?: string;
}

/** A call's record: outlives BullMQ's job retention, answers `report`. */
export interface CallRecord {
  callId: string;
  campaignId: string;
  phoneNumber: string;
  state: CallState;
  attempts: number;
  room?: string;
  attemptStartedAt?: number;
  /**
   * The attempt whose CreateSIPParticipant may have gone out (claimDial). From then on the attempt is spent even when
   * LiveKit no longer shows its participant: the phone may have rung and ended while no consumer was alive.
   */
  dialSentAttempt?: number;
  /** When that attempt was marked sent (epoch ms): its ringing timeout runs from about then. */
  dialSentAt?: number;
  /** LiveKit/network failures this call met so far (each retried without spending an attempt, up to a limit). */
  platformErrors: number;
  outcome?: Outcome;
  reason?: string;
  /** When the terminal outcome's report says the call ended (epoch ms). */
  endedAt?: number;
  sipStatusCode?: number;
  sipStatus?: string;
  metadata: Record<string, unknown>;
  attemptLog: AttemptEntry[];
  /** Agent-side details of the terminal outcome (transfer, survey answers, summary, transcript, duration). */
  details?: Partial<CallResult>;
  /**
   * Set when the call ended: whether it was dialed at least once (applyTerminal.lua decides); undefined while in
   * flight, and on records that ended before it was kept.
   */
  dialed?: boolean;
  /** How the agent saw the current attempt's SIP participant leave before it answered (see observeAttemptEnd). */
  attemptObserved?: AttemptObservation;
  /**
   * When an operator canceled the call while its dial may have gone out (epoch ms; requestCancel): it ends `canceled`
   * when that attempt ends unanswered, instead of being tried again.
   */
  cancelRequestedAt?: number;
  createdAt: number;
  updatedAt: number;
}

export interface CampaignCounters {
  total: number;
  terminal: number;
  /**
   * Ended calls never dialed (ended before any dial went out: canceled, expired, skipped, failed before an attempt or
   * after LiveKit errors only); undefined for a campaign whose calls all ended before this count was kept.
   */
  undialed?: number;
  byOutcome: Partial<Record<Outcome, number>>;
}

/** What creating a batch of records found for each call. */
export type CreateStatus = 'created' | 'queued' | 'past_queued';

/** createCalls.lua's answer per call (1 created, 0 queued, else past queued) as CreateStatus. */
function statusesOf(replies: readonly number[]): CreateStatus[] {
  return replies.map((s) => (s === 1 ? 'created' : s === 0 ? 'queued' : 'past_queued'));
}

export interface NewCall {
  callId: string;
  /** E.164 (or, for a malformed job recorded as failed, the text it carried). */
  phoneNumber: string;
  /** Digits dialed after the answer: kept in the record's number (`+16505550100;ext=136`, recordNumber). */
  extension?: string;
  metadata: Record<string, unknown>;
  /** The producer's idempotency key, kept on the record (IDEMPOTENCY_KEY_FIELD) when this call creates it. */
  idempotencyKey?: string;
}

/** What a record is created from when none exists yet. */
export type CallIdentity = Pick<CallJob, 'callId' | 'campaignId' | 'phoneNumber' | 'metadata' | 'extension'>;

/**
 * The number a call record keeps: E.164, then `;ext=…` when the call has an extension (formatPhoneNumber). Every
 * record is written through it (producer, a job pushed straight onto `calls`, an attempt that finds no record), so the
 * report and exports show the extension whoever enqueued the call.
 */
export function recordNumber(call: { phoneNumber: string; extension?: string }): string {
  return formatPhoneNumber({ e164: call.phoneNumber, extension: call.extension });
}

/**
 * What the agent saw when a consumer-dialed SIP participant left its room before `sip.callStatus` became `active`:
 * the participant's DisconnectReason name (livekit/protocol livekit_models.proto, e.g. USER_REJECTED for a
 * decline or busy, USER_UNAVAILABLE for a ring-out or unreachable number, SIP_TRUNK_FAILURE, ROOM_DELETED;
 * UNKNOWN_REASON when the room did not say) and the last `sip.callStatus` it had (dialing, ringing, hangup).
 */
export interface AttemptEndObservation {
  disconnectReason: string;
  lastCallStatus?: string;
  /**
   * Whether `sip.callStatus` ever reached `ringing` (a 180 from the far end). It tells a decline (after ringing) from a
   * busy line, and a ring-out from a number not found, where the DisconnectReason is the same for both.
   */
  rang?: boolean;
  /** When the call ended as the room showed it (epoch ms), which can be well before the note is written. */
  endedAt?: number;
}

/** An AttemptEndObservation as stored on the record: for which attempt, and when (epoch ms). */
export interface AttemptObservation extends AttemptEndObservation {
  attempt: number;
  at: number;
}

/** A rolling window of dial starts as claimDial.lua checks it (the consumer's DialRateLimiter.startWindow gives it). */
export interface DialStartWindow {
  logKey: string;
  limit: number;
  windowUs: number;
  keepUs: number;
  member: string;
  /** The call's campaign's own rate, checked and counted in the same claim (its own log, same member). */
  campaign?: { logKey: string; limit: number; windowUs: number };
  /** Slack this window leaves between the check and the request's arrival (ms). */
  marginMs: number;
}

/**
 * A DialStartWindow as the start-counting scripts take it (claimDial.lua after its record and lock, reserveDialStart.lua
 * after its back-off key): keys `[start log, campaign's start log?]`, arguments `[limit, window µs, member, keep µs,
 * campaign's limit, campaign's window µs, not after (epoch ms)]`, '' for what is absent.
 */
interface WindowStart {
  keys: string[];
  args: ScriptArg[];
}

function windowStart(window: DialStartWindow, notAfterMs: number | undefined): WindowStart {
  const campaign = window.campaign;
  return {
    keys: campaign ? [window.logKey, campaign.logKey] : [window.logKey],
    args: [window.limit, window.windowUs, window.member, window.keepUs, campaign?.limit ?? '', campaign?.windowUs ?? '', notAfterMs ?? ''],
  };
}

/**
 * What claimDial found:/**
 * What claimDial found: `ok` (dial now), `lost_lock` (another consumer owns the job: do nothing), `backoff` (LiveKit
 * was failing: wait `waitMs`, then take a new CPS slot), `window_full` (DIAL_CPS starts already fall in the rolling
 * window: try again in `waitMs`), `not_dialing` (the call ended or moved on meanwhile), `already_sent` (this attempt
 * was dialed before: follow it, never dial it again).
 */
export type DialClaim =
  | { status: 'ok' }
  | { status: 'lost_lock' }
  | { status: 'not_dialing' }
  | { status: 'already_sent' }
  | { status: 'backoff'; waitMs: number }
  | { status: 'window_full'; waitMs: number }
  /** The call's campaign already started its own rate's worth of calls in its rolling window: try again in `waitMs`. */
  | { status: 'campaign_full'; waitMs: number }
  /** The call's campaign ended, or the call expired, before this start (`notAfterMs`): it is not dialed. */
  | { status: 'past_end' };

export interface AttemptResult {
  result: string;
  kind?: 'retry' | 'final';
  reason?: string;
  sipStatusCode?: number;
  sipStatus?: string;
}

const LUA_FOLDER = new URL('./lua/', import.meta.url);

/** `[purged call ids, ids already gone, calls still in flight]`, as purgeCalls.lua answers. */
type PurgeReply = [string[], string[], number];
const purgeReply = (reply: unknown): PurgeReply | undefined => {
  if (!Array.isArray(reply) || reply.length !== 3) return undefined;
  const [purged, gone, flying]: unknown[] = reply;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  return strings(purged) && strings(gone) && typeof flying === 'number' ? [purged, gone, flying] : undefined;
};

/** The call record's scripts (src/core/lua), with their keys and arguments in order; see each file's header. */
const scripts = {
  createCalls: new LuaScript<readonly string[], readonly ScriptArg[], number[]>('createCalls', LUA_FOLDER, 'variable', replies.integers),
  beginAttempt: new LuaScript<
    [record: string, counters: string, callList: string],
    [attempt: number, room: string, now: number, missingRecord: string, dialSent: '1' | '0'],
    string
  >('beginAttempt', LUA_FOLDER, 3, replies.string),
  endAttempt: new LuaScript<[record: string], [attempt: number, next: string, now: number, result: string], number>(
    'endAttempt',
    LUA_FOLDER,
    1,
    replies.integer,
  ),
  /** Keys: record, lock, back-off, start log, and the campaign's start log when it has its own rate (4 or 5). */
  claimDial: new LuaScript<readonly string[], readonly ScriptArg[], [string, number]>('claimDial', LUA_FOLDER, 'variable', replies.statusAndNumber),
  /** claimDial's first step for a call in another shard: keys back-off, start log, and the campaign's start log (2 or 3). */
  reserveDialStart: new LuaScript<readonly string[], readonly ScriptArg[], [string, number]>('reserveDialStart', LUA_FOLDER, 'variable', replies.statusAndNumber),
  /** claimDial's second step for a call in another shard, in the shard's slot. */
  markDialSent: new LuaScript<[record: string, lock: string], [attempt: number, token: string, now: number], [string, number]>(
    'markDialSent',
    LUA_FOLDER,
    2,
    replies.statusAndNumber,
  ),
  releaseDial: new LuaScript<[record: string, lock: string], [attempt: number, token: string], number>('releaseDial', LUA_FOLDER, 2, replies.integer),
  requestCancel: new LuaScript<[record: string], [now: number], number>('requestCancel', LUA_FOLDER, 1, replies.integer),
  applyTerminal: new LuaScript<
    [record: string, counters: string, callList: string],
    [
      outcome: string,
      now: number,
      fields: string,
      missingRecord: string,
      from: string,
      fromAtLatestAttempt: string,
      attempt: number | '',
      retentionS: number,
      fromBeforeDialSent: string,
      connected: '1' | '0',
      notForAttemptsWithoutAgent: '1' | '0',
    ],
    number | string
  >('applyTerminal', LUA_FOLDER, 3, replies.integerOrString),
  endAttemptWithoutAgent: new LuaScript<
    [record: string, lock: string],
    [attempt: number, token: string, now: number, result: string, next: 'waiting_retry' | 'dialing'],
    string
  >('endAttemptWithoutAgent', LUA_FOLDER, 2, replies.string),
  observeAttemptEnd: new LuaScript<[record: string], [attempt: number, observation: string], number>(
    'observeAttemptEnd',
    LUA_FOLDER,
    1,
    replies.integer,
  ),
  purgeCalls: new LuaScript<readonly string[], readonly ScriptArg[], PurgeReply>('purgeCalls', LUA_FOLDER, 'variable', purgeReply),
  compactCallList: new LuaScript<readonly string[], readonly string[], number>('compactCallList', LUA_FOLDER, 'variable', replies.integer),
  dropEmptyCampaign: new LuaScript<[callList: string, counters: string, pausedHeld: string], [keepCounted: '0' | '1'], number>(
    'dropEmptyCampaign',
    LUA_FOLDER,
    3,
    replies.integer,
  ),
};

/** How applyTerminal.lua prefixes the state when it refuses a result for an attempt hung up for want of an agent. */
const NO_AGENT_REFUSAL = 'no_agent:';

const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
const isState = (v: string | undefined): v is CallState => CALL_STATES.some((s) => s === v);
const isOutcome = (v: string | undefined): v is Outcome => OUTCOMES.some((o) => o === v);

function parseRecord(fields: Record<string, string>): CallRecord | undefined {
  if (!fields.callId || !isState(fields.state)) return undefined;
  return {
    callId: fields.callId,
    campaignId: fields.campaignId ?? '',
    phoneNumber: fields.phoneNumber ?? '',
    state: fields.state,
    attempts: Number(fields.attempts ?? 0),
    room: fields.room,
    attemptStartedAt: num(fields.attemptStartedAt),
    dialSentAttempt: num(fields.dialSentAttempt),
    dialSentAt: num(fields.dialSentAt),
    platformErrors: Number(fields.platformErrors ?? 0),
    outcome: isOutcome(fields.outcome) ? fields.outcome : undefined,
    reason: fields.reason || undefined,
    endedAt: num(fields.endedAt),
    sipStatusCode: num(fields.sipStatusCode),
    sipStatus: fields.sipStatus || undefined,
    metadata: JSON.parse(fields.metadata ?? '{}') as Record<string, unknown>,
    attemptLog: JSON.parse(fields.attemptLog ?? '[]') as AttemptEntry[],
    details: fields.details ? (JSON.parse(fields.details) as Partial<CallResult>) : undefined,
    dialed: fields.dialed === undefined ? undefined : fields.dialed === '1',
    attemptObserved: fields.attemptObserved ? (JSON.parse(fields.attemptObserved) as AttemptObservation) : undefined,
    cancelRequestedAt: num(fields.cancelRequestedAt),
    createdAt: Number(fields.createdAt ?? 0),
    updatedAt: Number(fields.updatedAt ?? 0),
  };
}

const RECORD_FETCH_BATCH = 1000;
const MICROS_PER_MS = 1000;
/** How long a dial whose sent mark no replica acknowledged waits before it tries again with a new CPS slot. */
const REPLICA_SHORTFALL_BACKOFF_MS = 1000;
/** How long the count of connected replicas is trusted before ROLE is asked again. */
const REPLICA_COUNT_MAX_AGE_MS = 1000;
/** How many times an attempt's end is written before the dialer goes on without the replicas' acknowledgement. */
const ATTEMPT_END_WRITES = 4;
/** How long an attempt's end that met a lost connection waits before it is written again. */
export const ATTEMPT_END_RETRY_MS = SECOND;
/**
 * How long an attempt's end is tried on a lost connection before the error goes up (the job then fails, and its next run
 * follows the attempt in LiveKit): as long as a hang-up is tried through a LiveKit outage.
 */
export const ATTEMPT_END_RETRY_MAX_MS = 2 * MINUTE;

/** Which attempt of which call a write is about (for the logs of whoever hears of it). */
export interface AttemptRef {
  campaignId: string;
  callId: string;
  attempt: number;
}

/**
 * Why a write (a dial's sent mark, an attempt's end) is not known to be on the replicas it should be on: `acked` of
 * `wanted` replicas acknowledged it (Redis WAIT), or the connection was made again after it (`reconnected`), so it may
 * have been lost with the server it went to.
 */
export interface ReplicaShortfall {
  acked: number;
  wanted: number;
  reconnected: boolean;
}

/**
 * Call records and campaign counters in Redis. Every state change is one Lua script, so a crash between
 * two steps leaves a state a re-run can read: a terminal outcome is applied once, whoever reports it twice.
 */
export class CallStore {
  readonly keys: DialerKeys;
  /** Where each campaign's records live (QUEUE_PREFIX's call shards, as this process configured them). */
  readonly shards: CallShards;
  private readonly redis: RedisClient;
  /** Leases of calls in progress (DIAL_MAX_ACTIVE_CALLS): a call's terminal outcome gives its lease back. */
  private readonly leases: ActiveCallLeases;

  /** Reconnections of `redis` (with `dialReplicaAcks`): one between a write and its check voids the check. */
  private readonly generation: { readonly count: number } | undefined;

  /**
   * `dialReplicaAcks`: replicas that must acknowledge a dial's sent mark (Redis WAIT on this connection) before
   * claimDial answers `ok`; undefined: no wait. `onReplicaShortfall` hears of each claim taken back, and each attempt
   * end written again, for want of them (`write` says which).
   */
  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly clock: Clock,
    private readonly durability: {
      dialReplicaAcks?: { replicas: number; timeoutMs: number };
      onReplicaShortfall?: (shortfall: ReplicaShortfall, write: 'dial_mark' | 'attempt_end') => void;
      /** Hears of each attempt end written again because its write (or its check) met a lost connection. */
      onAttemptEndRetry?: (err: Error, elapsedMs: number, end: AttemptRef) => void;
    } = {},
  ) {
    this.shards = callShardsOf(prefix);
    this.keys = dialerKeys(prefix, this.shards);
    this.redis = redis;
    this.leases = new ActiveCallLeases(redis, prefix);
    this.generation = durability.dialReplicaAcks ? connectionGeneration(redis) : undefined;
  }

  /** Creates records for new calls (state `queued`) in one script per batch; reports what it found per call. */
  async createCalls(campaignId: string, calls: readonly NewCall[]): Promise<CreateStatus[]> {
    if (calls.length === 0) return [];
    // The index lives outside the campaign's hash slot, so it is a second command, sent alongside the script.
    const [statuses] = await Promise.all([this.createRecords(campaignId, calls), this.redis.sadd(this.keys.campaignIndex(), campaignId)]);
    return statuses;
  }

  /**
   * createCalls for the one call of a dial job (the consumer, before its gates): the campaign index is written only
   * when the record was created here. A record found already (every job the dialer enqueued itself) was indexed when
   * it was created, and a campaign with a call on record is never dropped from the index (dropCampaignIfEmpty), so the
   * SADD it sent on every dial changed nothing. A created record costs a second round trip instead of a parallel one.
   */
  async createCall(campaignId: string, call: NewCall): Promise<CreateStatus> {
    const [created] = await this.createRecords(campaignId, [call]);
    if (created === 'created') await this.redis.sadd(this.keys.campaignIndex(), campaignId);
    return created ?? 'queued';
  }

  /** createCalls.lua over `calls` (one campaign), without the campaign index. */
  private async createRecords(campaignId: string, calls: readonly NewCall[]): Promise<CreateStatus[]> {
    const recordKeys: string[] = [];
    const args: string[] = [];
    for (const c of calls) {
      recordKeys.push(this.keys.callRecord(campaignId, c.callId));
      args.push(c.callId, recordNumber(c), JSON.stringify(c.metadata), c.idempotencyKey ?? '');
    }
    const replies = await scripts.createCalls.run(
      this.redis,
      [this.keys.campaignCounters(campaignId), this.keys.campaignCalls(campaignId), ...recordKeys],
      [this.clock.now(), campaignId, ...args],
    );
    return statusesOf(replies);
  }

  /**
   * Records the start of dial attempt `attempt` in `room`; returns the state it found ('terminal': don't dial).
   * `dialSent`: the dial goes out right away with no claim between (the agent dialing a call itself), so the attempt is
   * marked sent now, as claimDial.lua marks a consumer's: an operator's cancel then treats the call as ringing.
   */
  async beginAttempt(job: CallIdentity, attempt: number, room: string, options: { dialSent?: boolean } = {}): Promise<CallState | 'missing'> {
    const now = this.clock.now();
    const missing = {
      callId: job.callId,
      campaignId: job.campaignId,
      phoneNumber: recordNumber(job),
      metadata: JSON.stringify(job.metadata),
      attempts: '0',
      createdAt: String(now),
    };
    const state = await scripts.beginAttempt.run(
      this.redis,
      [this.keys.callRecord(job.campaignId, job.callId), this.keys.campaignCounters(job.campaignId), this.keys.campaignCalls(job.campaignId)],
      [attempt, room, now, JSON.stringify(missing), options.dialSent ? '1' : '0'],
    );
    if (state === 'missing') await this.redis.sadd(this.keys.campaignIndex(), job.campaignId);
    return state === 'missing' || isState(state) ? state : 'missing';
  }

  /**
   * Records a call the agent connected itself (an inbound caller, or a number it dialed on a bare
   * `lk dispatch create`): created if missing, `in_call` as attempt 1 in `room`, and counted among the calls in
   * progress (ActiveCallLeases, released by its outcome); nothing once it has ended.
   */
  async recordAgentCall(call: CallIdentity, room: string): Promise<void> {
    const state = await this.beginAttempt(call, 1, room);
    if (state === 'terminal') return;
    await this.endAttempt(call.campaignId, call.callId, 1, 'in_call', { result: 'answered' });
    // counted among the calls in progress (never refused here: DIAL_RESERVED_INBOUND keeps room for it); its outcome
    // releases the lease, the time to live only backs that up
    await this.leases.acquire(call, { limit: 0, ttlMs: INBOUND_LEASE_TTL_MS });
  }

  /**
   * Ends attempt `attempt` in its log: the call is now `in_call`, `waiting_retry`, or stays `dialing` until its outcome
   * lands. No-op once terminal.
   */
  async endAttempt(
    campaignId: string,
    callId: string,
    attempt: number,
    next: 'in_call' | 'waiting_retry' | 'dialing',
    result: AttemptResult,
  ): Promise<void> {
    await this.writeReplicated({ campaignId, callId, attempt }, async () => {
      await scripts.endAttempt.run(this.redis, [this.keys.callRecord(campaignId, callId)], [attempt, next, this.clock.now(), JSON.stringify(result)]);
    });
  }

  /**
   * With `dialReplicaAcks`, an attempt's end (a decline, a busy, the answer) is written until the replicas connected
   * to the primary hold it, as a dial's sent mark is (durableClaim): Redis WAIT after the write, and short of the
   * acknowledgements the write again, on whatever primary the connection reaches by then. A primary that dies before
   * replicating the end otherwise leaves the promoted replica with the attempt sent and never ended: the re-run job
   * finds the room gone and tries the number again, ringing a callee who had declined (the Sentinel failover test,
   * under two full test runs at once). `write` must be safe to repeat (endAttempt.lua closes the same entry again).
   * After ATTEMPT_END_WRITES writes without them (a replica that is up but does not answer) the dialer goes on.
   */
  private async writeReplicated(end: AttemptRef, write: () => Promise<void>): Promise<void> {
    const startedAt = this.clock.now();
    for (let writes = 1; ; writes++) {
      const before = this.generation?.count;
      let shortfall: ReplicaShortfall | undefined;
      try {
        await write();
        shortfall = await this.replicaShortfall(before);
      } catch (err) {
        // ioredis rejects the commands it holds when it ends a connection (through Sentinel, on a `+switch-master`
        // heard between sockets; see redisConnection.ts connectAgain), and the connection comes back on its own. An
        // end that went up from here failed the job: its next run, finding the attempt sent and LiveKit showing no
        // call any more, counted it as an unknown end and rang a callee who had declined again (the Sentinel failover
        // test under load). The end is known here and nowhere else: it is written again until it lands.
        // A connection this process closed itself (quit or disconnect, as a forced stop does under jobs still
        // running) never comes back: writing again would only hold the job for ATTEMPT_END_RETRY_MAX_MS.
        const elapsedMs = this.clock.now() - startedAt;
        if (!isRedisConnectionError(err) || !(err instanceof Error) || closedForGood(this.redis) || elapsedMs >= ATTEMPT_END_RETRY_MAX_MS) throw err;
        this.durability.onAttemptEndRetry?.(err, elapsedMs, end);
        await this.clock.sleep(ATTEMPT_END_RETRY_MS);
        continue;
      }
      if (!shortfall || writes >= ATTEMPT_END_WRITES) return;
      this.durability.onReplicaShortfall?.(shortfall, 'attempt_end');
    }
  }

  /**
   * The last step before CreateSIPParticipant: marks attempt `attempt` as sent and records the dial start in the
   * DIAL_CPS window, atomically checking that `lock.token` still holds the dial job's BullMQ lock (`lock.key`), that no
   * platform back-off (`backoffKey`) runs, that the call is dialing this attempt and was not sent before, and that the
   * rolling window has room (and the campaign's own, `window.campaign`), and that it is not past `notAfterMs` (epoch ms:
   * the campaign's end or the call's expiry, whichever comes first). Only an `ok` may dial; see claimDial.lua.
   */
  async claimDial(
    campaignId: string,
    callId: string,
    attempt: number,
    lock: { key: string; token: string },
    backoffKey: string,
    window: DialStartWindow,
    notAfterMs?: number,
  ): Promise<DialClaim> {
    const record = this.keys.callRecord(campaignId, callId);
    const start = windowStart(window, notAfterMs);
    const before = this.generation?.count;
    const [status, n] =
      this.shards.prefixOf(campaignId) === this.shards.prefix
        ? await this.claimInOneStep(record, attempt, lock, backoffKey, start)
        : await this.claimInTwoSteps(record, attempt, lock, backoffKey, start, window);
    switch (status) {
      case 'ok':
        return this.durableClaim(campaignId, callId, attempt, lock, before);
      case 'lost_lock':
        return { status };
      case 'not_dialing':
        return { status };
      case 'already_sent':
        return { status };
      case 'past_end':
        return { status };
      case 'backoff':
        return { status, waitMs: Number(n) };
      case 'window_full':
      case 'campaign_full':
        return { status, waitMs: Number(n) / MICROS_PER_MS };
      default:
        throw new Error(`claimDial.lua answered an unknown status: ${status}`);
    }
  }

  /** claimDial.lua: every check and both writes in one script (the call's record is in QUEUE_PREFIX's own slot). */
  private claimInOneStep(record: string, attempt: number, lock: { key: string; token: string }, backoffKey: string, start: WindowStart): Promise<[string, number]> {
    return scripts.claimDial.run(this.redis, [record, lock.key, backoffKey, ...start.keys], [attempt, lock.token, this.clock.now(), ...start.args]);
  }

  /**
   * For a call in another call shard (callShards.ts), whose record and job lock live in another slot than the global
   * window: the start is counted in QUEUE_PREFIX's slot first (reserveDialStart.lua: back-off, end, windows), then the
   * attempt marked sent in the shard's (markDialSent.lua: lock, record). A refused mark takes the start back out of the
   * windows; a process that dies between the steps leaves a start counted that never went out (the limit errs low,
   * never high). The send gate's bound (DialStartWindow.marginMs) counts from before the first step, so the second
   * round trip cannot carry the request past it unnoticed.
   */
  private async claimInTwoSteps(
    record: string,
    attempt: number,
    lock: { key: string; token: string },
    backoffKey: string,
    start: WindowStart,
    window: DialStartWindow,
  ): Promise<[string, number]> {
    const reserved = await scripts.reserveDialStart.run(this.redis, [backoffKey, ...start.keys], start.args);
    if (reserved[0] !== 'ok') return reserved;
    const marked = await scripts.markDialSent.run(this.redis, [record, lock.key], [attempt, lock.token, this.clock.now()]);
    if (marked[0] !== 'ok') {
      await this.redis.zrem(window.logKey, window.member);
      if (window.campaign) await this.redis.zrem(window.campaign.logKey, window.member);
    }
    return marked;
  }

  /**
   * With `dialReplicaAcks`, waits (Redis WAIT) until that many replicas hold this connection's writes, the sent mark
   * included: a failover can then not lose the mark of a call that may ring, and the promoted replica's consumers
   * follow the attempt instead of dialing it again. Short of them, the claim is taken back (nothing was sent) and
   * the dial backs off like a platform failure: it waits `REPLICA_SHORTFALL_BACKOFF_MS`, then takes a new slot.
   * It waits for at most the replicas connected to the primary (ROLE, read at most once per
   * `REPLICA_COUNT_MAX_AGE_MS`): a connected replica that does not answer stops the dials, while a primary left with
   * no replica at all (right after a failover, until the old primary comes back as one) keeps dialing.
   * Redis WAIT: https://redis.io/docs/latest/commands/wait/ (replication stays asynchronous; WAIT makes a lost write
   * need both the primary and every acknowledging replica to fail).
   */
  private async durableClaim(
    campaignId: string,
    callId: string,
    attempt: number,
    lock: { key: string; token: string },
    generationBefore: number | undefined,
  ): Promise<DialClaim> {
    const shortfall = await this.replicaShortfall(generationBefore);
    if (!shortfall) return { status: 'ok' };
    this.durability.onReplicaShortfall?.(shortfall, 'dial_mark');
    await this.releaseDial(campaignId, callId, attempt, lock);
    return { status: 'backoff', waitMs: REPLICA_SHORTFALL_BACKOFF_MS };
  }

  /**
   * With `dialReplicaAcks`: waits (Redis WAIT, up to its timeout) until the replicas connected to the primary, up to
   * the configured number, hold this connection's writes. Undefined when they do or none is wanted (no setting, or a
   * primary with no replica); else how many acknowledged of how many wanted.
   */
  private async replicaShortfall(generationBefore: number | undefined): Promise<ReplicaShortfall | undefined> {
    const configured = this.durability.dialReplicaAcks;
    if (!configured) return undefined;
    const wanted = Math.min(configured.replicas, await this.connectedReplicas());
    const acked = wanted === 0 ? 0 : await this.redis.wait(wanted, configured.timeoutMs);
    // Made again since the write (the primary died, say): WAIT and ROLE answered for the server reached now, which
    // may be a promoted replica that never saw the write, and has no replica of its own yet. A failover test run under
    // load rang a declined callee again that way: the attempt's end died with the old primary, and the new one, with
    // no replica, made the check pass without waiting. The write is not known to be anywhere; count it as short.
    if (this.generation && this.generation.count !== generationBefore) {
      this.replicaCount = undefined; // the primary may have other replicas (or none) now: ask again
      return { acked, wanted, reconnected: true };
    }
    if (wanted === 0 || acked >= wanted) return undefined;
    this.replicaCount = undefined;
    return { acked, wanted, reconnected: false };
  }

  private replicaCount: { count: number; readAt: number } | undefined;

  /** Replicas connected to the primary, from ROLE (`['master', offset, [[ip, port, offset], …]]`), cached briefly. */
  private async connectedReplicas(): Promise<number> {
    const now = this.clock.now();
    if (this.replicaCount && now - this.replicaCount.readAt < REPLICA_COUNT_MAX_AGE_MS) return this.replicaCount.count;
    const role = await this.redis.role();
    const replicas = role[0] === 'master' && Array.isArray(role[2]) ? role[2].length : 0;
    this.replicaCount = { count: replicas, readAt: now };
    return replicas;
  }

  /** Counts a platform failure against the call (one that started the queue's back-off); returns its count so far. */
  async notePlatformError(campaignId: string, callId: string): Promise<number> {
    return this.redis.hincrby(this.keys.callRecord(campaignId, callId), 'platformErrors', 1);
  }

  /**
   * Whether `lock` (a dial job's BullMQ lock key and this holder's token) is still held right now. A holder whose lock
   * lapsed must not delete the attempt's room: another consumer may have dispatched its agent there since.
   */
  async holdsLock(lock: { key: string; token: string }): Promise<boolean> {
    return (await this.redis.get(lock.key)) === lock.token;
  }

  /**
   * Ends answered attempt `attempt` for want of an agent, before the consumer hangs up: in one script, only while
   * `lock` is still this holder's and the call is `dialing` that attempt, its log entry gets `result`, the attempt is
   * listed as hung up without an agent (applyTerminal.lua refuses an agent outcome for it from then on), and the call
   * moves to `next` (`waiting_retry` for a retry; `dialing` when the caller ends the call itself next). `ended`: done;
   * otherwise why not: the lock lapsed, or the record is not dialing that attempt (an agent's outcome or the in_call
   * mark came first; `other_attempt`, `missing`).
   */
  async endAttemptWithoutAgent(
    campaignId: string,
    callId: string,
    attempt: number,
    lock: { key: string; token: string },
    result: AttemptResult,
    next: 'waiting_retry' | 'dialing',
  ): Promise<{ status: 'ended' } | { status: 'lost_lock' } | { status: 'not_dialing'; state: string }> {
    const reply = await scripts.endAttemptWithoutAgent.run(
      this.redis,
      [this.keys.callRecord(campaignId, callId), lock.key],
      [attempt, lock.token, this.clock.now(), JSON.stringify(result), next],
    );
    if (reply === 'ok') return { status: 'ended' };
    if (reply === 'lost_lock') return { status: 'lost_lock' };
    return { status: 'not_dialing', state: reply };
  }

  /**
   * Notes an operator's cancel on a call in flight (see CallRecord.cancelRequestedAt); false when the call has no
   * record or has ended.
   */
  async requestCancel(campaignId: string, callId: string): Promise<boolean> {
    return (await scripts.requestCancel.run(this.redis, [this.keys.callRecord(campaignId, callId)], [this.clock.now()])) === 1;
  }

  /** Takes back claimDial's mark when the CreateSIPParticipant surely never went out; false if not this holder's. */
  async releaseDial(campaignId: string, callId: string, attempt: number, lock: { key: string; token: string }): Promise<boolean> {
    const released = await scripts.releaseDial.run(this.redis, [this.keys.callRecord(campaignId, callId), lock.key], [attempt, lock.token]);
    return released === 1;
  }

  /**
   * Applies a terminal outcome once; returns false when the call had already ended, or (with `onlyFrom`) was not
   * in one of those states. Without `onlyFrom` any state will do, and a missing record is created: for trusted
   * in-process callers. Results from the queue go through `applyTransition` with the state machine's rule.
   */
  async applyTerminal(
    result: CallResult,
    options: { phoneNumber?: string; onlyFrom?: readonly CallState[]; retentionS?: number } = {},
  ): Promise<boolean> {
    const transition = options.onlyFrom ? { from: options.onlyFrom, fromAtLatestAttempt: [] } : undefined;
    const applied = await this.applyTransition(result, transition, { phoneNumber: options.phoneNumber, retentionS: options.retentionS });
    return applied.status === 'applied';
  }

  /** One call's record, or undefined. */
  async get(campaignId: string, callId: string): Promise<CallRecord | undefined> {
    return parseRecord(await this.redis.hgetall(this.keys.callRecord(campaignId, callId)));
  }

  /** The campaign's counters (O(1): a single hash). */
  async counters(campaignId: string): Promise<CampaignCounters> {
    const raw = await this.redis.hgetall(this.keys.campaignCounters(campaignId));
    const byOutcome: Partial<Record<Outcome, number>> = {};
    for (const outcome of OUTCOMES) {
      const n = Number(raw[`outcome:${outcome}`] ?? 0);
      if (n > 0) byOutcome[outcome] = n;
    }
    const counters: CampaignCounters = { total: Number(raw.total ?? 0), terminal: Number(raw.terminal ?? 0), byOutcome };
    if (raw.undialed !== undefined) counters.undialed = Number(raw.undialed);
    return counters;
  }

  /** A campaign's records in enqueue order (the first `limit`, or all), fetched in pipelined batches. */
  async list(campaignId: string, limit?: number): Promise<CallRecord[]> {
    const ids = await this.redis.lrange(this.keys.campaignCalls(campaignId), 0, limit === undefined ? -1 : limit - 1);
    const records: CallRecord[] = [];
    for (let i = 0; i < ids.length; i += RECORD_FETCH_BATCH) {
      const pipeline = this.redis.pipeline();
      for (const id of ids.slice(i, i + RECORD_FETCH_BATCH)) pipeline.hgetall(this.keys.callRecord(campaignId, id));
      const replies = (await pipeline.exec()) ?? [];
      for (const [err, fields] of replies) {
        if (err) throw err;
        const record = parseRecord(fields as Record<string, string>);
        if (record) records.push(record);
      }
    }
    return records;
  }

  /** Ids of a campaign's calls, in enqueue order. */
  async callIds(campaignId: string): Promise<string[]> {
    return this.redis.lrange(this.keys.campaignCalls(campaignId), 0, -1);
  }

  /** Adds numbers (E.164) to the do-not-call list; returns how many were new. */
  async addDoNotCall(numbers: readonly string[]): Promise<number> {
    return numbers.length ? this.redis.sadd(this.keys.doNotCall(), ...numbers) : 0;
  }

  /** Removes numbers from the do-not-call list; returns how many were there. */
  async removeDoNotCall(numbers: readonly string[]): Promise<number> {
    return numbers.length ? this.redis.srem(this.keys.doNotCall(), ...numbers) : 0;
  }

  /** Whether an operator canceled the call while its dial may have been out (requestCancel). */
  async isCancelRequested(campaignId: string, callId: string): Promise<boolean> {
    return (await this.redis.hexists(this.keys.callRecord(campaignId, callId), 'cancelRequestedAt')) === 1;
  }

  /** True when the number is on the do-not-call list. */
  async isDoNotCall(number: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.doNotCall(), number)) === 1;
  }

  /** Pauses a campaign: its calls not yet ringing wait, spending no attempt, until it resumes. False if it was paused. */
  async pauseCampaign(campaignId: string): Promise<boolean> {
    return (await this.redis.sadd(this.keys.pausedCampaigns(), campaignId)) === 1;
  }

  async isPaused(campaignId: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.pausedCampaigns(), campaignId)) === 1;
  }

  /** Notes a job the pause held back, so resuming releases it at once instead of at its next check. */
  async holdForPause(campaignId: string, jobId: string): Promise<void> {
    await this.redis.sadd(this.keys.pausedHeld(campaignId), jobId);
  }

  /** Resumes a campaign; returns whether it was paused and the job ids held back meanwhile (now forgotten). */
  async resumeCampaign(campaignId: string): Promise<{ wasPaused: boolean; heldJobIds: string[] }> {
    const wasPaused = (await this.redis.srem(this.keys.pausedCampaigns(), campaignId)) === 1;
    const held = this.keys.pausedHeld(campaignId);
    const [members] = (await this.redis.multi().smembers(held).del(held).exec()) ?? [];
    const heldJobIds = Array.isArray(members?.[1]) ? members[1].map(String) : [];
    return { wasPaused, heldJobIds };
  }

  /** The do-not-call list, sorted. */
  async doNotCallList(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.doNotCall())).sort();
  }

  /** Campaign ids that have records. */
  async campaigns(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.campaignIndex())).sort();
  }

  /**
   * Deletes the ended records among `callIds` of `campaignId` (with `before`, epoch ms: only those that ended before
   * it) and takes them out of the campaign's counters, in one step (purgeCalls.lua; pass a few hundred ids at a time,
   * so it blocks Redis for milliseconds only). Calls in flight are never touched. Answers the ids purged, the ids with
   * no record (expired or purged before) and how many of `callIds` are in flight.
   */
  async purgeEnded(campaignId: string, callIds: readonly string[], before?: number): Promise<{ purged: string[]; gone: string[]; inFlight: number }> {
    if (callIds.length === 0) return { purged: [], gone: [], inFlight: 0 };
    const [purged, gone, inFlight] = await scripts.purgeCalls.run(
      this.redis,
      [this.keys.campaignCounters(campaignId), ...callIds.map((id) => this.keys.callRecord(campaignId, id))],
      [before ?? '', ...callIds],
    );
    return { purged, gone, inFlight };
  }

  /**
   * Takes the ids among `callIds` whose records are gone (purged, or expired by their retention) out of the campaign's
   * call list (compactCallList.lua); an id whose record exists again stays.
   */
  async compactCallList(campaignId: string, callIds: readonly string[]): Promise<void> {
    if (callIds.length === 0) return;
    await scripts.compactCallList.run(this.redis, [this.keys.campaignCalls(campaignId), ...callIds.map((id) => this.keys.callRecord(campaignId, id))], callIds);
  }

  /**
   * Removes a campaign that has no call left on record: its call list, counters and paused-held jobs
   * (dropEmptyCampaign.lua), then its entries in the campaign index and the paused set. With `keepCounted`, a campaign
   * whose counters still count calls (records expired, tallies kept) stays. True when removed.
   */
  async dropCampaignIfEmpty(campaignId: string, options: { keepCounted: boolean }): Promise<boolean> {
    const dropped = await scripts.dropEmptyCampaign.run(
      this.redis,
      [this.keys.campaignCalls(campaignId), this.keys.campaignCounters(campaignId), this.keys.pausedHeld(campaignId)],
      [options.keepCounted ? '1' : '0'],
    );
    if (dropped !== 1) return false;
    await this.redis.multi().srem(this.keys.campaignIndex(), campaignId).srem(this.keys.pausedCampaigns(), campaignId).exec();
    // a call enqueued between the two steps recreated the counters: keep the campaign listed
    if ((await this.redis.exists(this.keys.campaignCounters(campaignId))) === 1) await this.redis.sadd(this.keys.campaignIndex(), campaignId);
    return true;
  }

  /**
   * Notes how the agent saw attempt `attempt` end before it was answered (its SIP participant left the room), as the
   * record's `attemptObserved`. Stored only while the record exists, is not terminal and is still on that attempt;
   * returns whether it was stored. The consumer that takes over an attempt whose dialer died reads it from there.
   */
  async observeAttemptEnd(campaignId: string, callId: string, attempt: number, observation: AttemptEndObservation): Promise<boolean> {
    const stored: AttemptObservation = {
      attempt,
      disconnectReason: observation.disconnectReason,
      lastCallStatus: observation.lastCallStatus,
      rang: observation.rang,
      endedAt: observation.endedAt,
      at: this.clock.now(),
    };
    const applied = await scripts.observeAttemptEnd.run(this.redis, [this.keys.callRecord(campaignId, callId)], [attempt, JSON.stringify(stored)]);
    return applied === 1;
  }

  /**
   * Ends a call with `result` if `transition` allows it from the state the record is in (undefined: any state, and a
   * missing record is created), in one Lua script. `applied`: the outcome is now the call's; `already_ended`: the call
   * had its outcome (a repeat, a no-op); `refused`: the call was in a state (or had no record, `missing`) this result
   * cannot end it from, and nothing was written. With `retentionS` > 0 the record expires that many seconds after it
   * ends (set atomically with the outcome; on a record that had ended without one, set now).
   */
  async applyTransition(
    result: CallResult,
    transition: TerminalTransition | undefined,
    options: { phoneNumber?: string; retentionS?: number } = {},
  ): Promise<TerminalApplied> {
    const phoneNumber = options.phoneNumber ?? '';
    const { callId, campaignId, outcome, reason, sipStatusCode, sipStatus } = result;
    const fields: Record<string, string> = { endedAt: String(result.endedAt) };
    if (reason) fields.reason = reason;
    if (sipStatusCode !== undefined) {
      fields.sipStatusCode = String(sipStatusCode);
      fields.sipStatus = sipStatus ?? '';
    }
    const details: Partial<CallResult> = {
      reportedBy: result.reportedBy,
      durationMs: result.durationMs,
      transfer: result.transfer,
      surveyAnswers: result.surveyAnswers,
      summary: result.summary,
      transcript: result.transcript,
    };
    fields.details = JSON.stringify(details);
    const now = this.clock.now();
    const missing = { callId, campaignId, phoneNumber, metadata: '{}', attempts: String(result.attempt ?? 0), createdAt: String(now) };
    const reply = await scripts.applyTerminal.run(
      this.redis,
      [this.keys.callRecord(campaignId, callId), this.keys.campaignCounters(campaignId), this.keys.campaignCalls(campaignId)],
      [
        outcome,
      now,
      JSON.stringify(fields),
      JSON.stringify(missing),
      (transition?.from ?? []).join(','),
      (transition?.fromAtLatestAttempt ?? []).join(','),
      result.attempt ?? '',
        Math.max(0, Math.round(options.retentionS ?? 0)),
        (transition?.fromBeforeDialSent ?? []).join(','),
        CONNECTED_OUTCOMES.includes(outcome) ? '1' : '0',
        transition?.notForAttemptsWithoutAgent ? '1' : '0',
      ],
    );
    if (reply === 1 || reply === 0) {
      // The call is over: its lease of a call in progress goes back (a no-op without one). A crash between the script
      // and this leaves the lease to its time to live.
      await this.leases.release({ campaignId, callId });
      return { status: reply === 1 ? 'applied' : 'already_ended' };
    }
    const answer = String(reply);
    const noAgentAttempt = answer.startsWith(NO_AGENT_REFUSAL);
    const state = noAgentAttempt ? answer.slice(NO_AGENT_REFUSAL.length) : answer;
    if (state === 'missing' || isState(state)) return noAgentAttempt ? { status: 'refused', state, noAgentAttempt } : { status: 'refused', state };
    throw new Error(`applyTerminal.lua answered an unknown reply: ${state}`);
  }

  /**
   * The field of a call record holding the idempotency key the call was enqueued with (written by createCalls.lua as
   * it creates a keyed call's record; absent for calls keyed by number or pushed straight onto the queue).
   */
  static readonly IDEMPOTENCY_KEY_FIELD = 'idempotencyKey';

  /** The idempotency keys of a campaign's calls, by call id (calls without one are left out); pipelined, read-only. */
  async idempotencyKeys(campaignId: string, callIds: readonly string[]): Promise<Map<string, string>> {
    const keys = new Map<string, string>();
    for (let i = 0; i < callIds.length; i += RECORD_FETCH_BATCH) {
      const batch = callIds.slice(i, i + RECORD_FETCH_BATCH);
      const pipeline = this.redis.pipeline();
      for (const id of batch) pipeline.hget(this.keys.callRecord(campaignId, id), CallStore.IDEMPOTENCY_KEY_FIELD);
      const replies = (await pipeline.exec()) ?? [];
      replies.forEach(([err, value], n) => {
        if (err) throw err;
        const id = batch[n];
        if (id !== undefined && typeof value === 'string') keys.set(id, value);
      });
    }
    return keys;
  }
}
