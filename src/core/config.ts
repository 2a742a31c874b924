import { isIP } from 'node:net';
import type { CountryCode } from 'libphonenumber-js';
import { z } from 'zod';
import { isTimeZone, parseCallWindow, type CallWindow } from './callWindow.js';
import { ConfigError, errorMessage } from './errors.js';
import { isRegion, parseRegion } from './phone.js';
import { callShardsOf, configureCallShards, MAX_CALL_SHARDS, type CallShards } from './callShards.js';
import { DEFAULT_REDIS_PORT, DEFAULT_SENTINEL_PORT, hashTag, parseHostPorts, RedisAddressError, type RedisTarget } from './redisTarget.js';
import { SECOND } from './time.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** The primary's name Redis Sentinel's own example configuration uses (`sentinel monitor mymaster …`). */
export const DEFAULT_SENTINEL_NAME = 'mymaster';
/** A replica on the same network acknowledges in well under a millisecond; this long means it is not keeping up. */
export const DEFAULT_REPLICA_ACK_TIMEOUT_MS = 500;
export const DEFAULT_QUEUE_PREFIX = 'bull';
export const DEFAULT_AGENT_NAME = 'telephony-agent';
export const DEFAULT_DIAL_CPS = 1;
export const DEFAULT_DIAL_CONCURRENCY = 10;
export const DEFAULT_DIAL_MAX_ATTEMPTS = 3;
export const DEFAULT_RINGING_TIMEOUT_S = 30;
export const DEFAULT_RETRY_DELAY_S = 300;
/**
 * A ringing call left by a crashed consumer is taken over within about 1.5× this. The lock is renewed every half of
 * it, so only a process stalled that long loses a job it still works on (and the takeover then only follows the call).
 */
export const DEFAULT_DIAL_LOCK_DURATION_MS = 10 * SECOND;
/** Below this a dial job's lock lapses on ordinary event-loop stalls and Redis hiccups. */
export const MIN_DIAL_LOCK_DURATION_MS = SECOND;
/**
 * After the callee answers, how long the consumer waits for an agent participant in the room before it hangs up:
 * an agent normally joins before the phone is even answered (its dispatch goes out first); one that is not there a
 * few seconds after the answer was never launched (LiveKit found no agent worker with room for it).
 */
export const DEFAULT_AGENT_JOIN_GRACE_MS = 5 * SECOND;
/** Longer than this, a callee talks to silence for too long before the call is given up. */
export const MAX_AGENT_JOIN_GRACE_MS = 60 * SECOND;
/**
 * After the answer, how long an agent whose job LiveKit has assigned (ListDispatch lists it) may take to join before
 * the call is hung up: agents-js connects its job process seconds after the assignment, 7-26 s at load 15-29 (README).
 */
export const DEFAULT_AGENT_JOIN_ASSIGNED_MAX_MS = 30 * SECOND;
/** Longer than the agent's default maximum call duration (600 s) plus its hang-up and reporting. */
export const DEFAULT_CALL_OUTCOME_TIMEOUT_S = 900;
/**
 * LiveKit/network failures one call may meet before it ends as `failed`. Each waits out the queue's platform back-off
 * (1 s doubling to 60 s), so the default gives LiveKit about five minutes to come back.
 */
export const DEFAULT_DIAL_MAX_PLATFORM_ERRORS = 10;
/** The queue's first platform back-off after a LiveKit/network failure; each further failed probe doubles it. */
export const DEFAULT_DIAL_PLATFORM_BACKOFF_MS = SECOND;
/** The platform back-off never grows past this (src/consumer/platformBackoff.ts PLATFORM_BACKOFF_MAX_MS), nor starts above it. */
const MAX_DIAL_PLATFORM_BACKOFF_MS = 60 * SECOND;
const MAX_PORT = 65535;
/** `dialer serve`: where the HTTP API listens, and how many requests one token may make per second. */
export const DEFAULT_API_PORT = 8080;
export const DEFAULT_API_HOST = '127.0.0.1';
export const DEFAULT_API_RATE_LIMIT = 200;
/** The metrics and health servers have no authentication: they listen on loopback unless METRICS_HOST widens it. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';
/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME_PATTERN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** An address `server.listen` accepts as its host: an IPv4/IPv6 literal or a host name. */
function isListenHost(value: string): boolean {
  return isIP(value) !== 0 || HOST_NAME_PATTERN.test(value);
}
/** Time zone of calling windows given without one. */
export const DEFAULT_TIME_ZONE = 'UTC';
/** Days a call's record (number, metadata, transcript, survey answers) is kept after the call ended; 0 keeps it for ever. */
export const DEFAULT_RECORD_RETENTION_DAYS = 90;
/** A hundred years: more is a typo (and would overflow Redis' expiry). */
export const MAX_RECORD_RETENTION_DAYS = 36_500;

const positiveInt = (name: string) =>
  z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be a whole number`).positive(`${name} must be > 0`);
const nonNegative = (name: string) => z.coerce.number({ error: `${name} must be a number` }).nonnegative(`${name} must be ≥ 0`);

/** Environment variables the dialer reads (the outside contract); empty strings count as unset. */
const envSchema = z.object({
  REDIS_URL: z.string().url('REDIS_URL must be a URL like redis://host:6379').default(DEFAULT_REDIS_URL),
  /** Redis Sentinel: `host:port,host:port` of the sentinels; set, every process connects to the primary they name. */
  REDIS_SENTINELS: z.string().optional(),
  /** Redis Cluster: `host:port,host:port` seed nodes; needs a hash-tagged QUEUE_PREFIX such as {dialer}. */
  REDIS_CLUSTER_NODES: z.string().optional(),
  /** The primary's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_NAME: z.string().min(1).default(DEFAULT_SENTINEL_NAME),
  /** The sentinels' own password (`requirepass` of the sentinels), when they have one. */
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  /**
   * Replicas that must acknowledge a dial's "sent" mark (Redis WAIT) before its CreateSIPParticipant goes out, so a
   * failover cannot lose the mark of a call that rang. Default: 1 through Sentinel, else 0 (off).
   */
  REDIS_DIAL_REPLICA_ACKS: z.coerce
    .number({ error: 'REDIS_DIAL_REPLICA_ACKS must be a number' })
    .int('REDIS_DIAL_REPLICA_ACKS must be a whole number')
    .min(0, 'REDIS_DIAL_REPLICA_ACKS must be ≥ 0')
    .optional(),
  /** How long a dial waits for those acknowledgements before it backs off (the dial is not sent). */
  REDIS_REPLICA_ACK_TIMEOUT_MS: positiveInt('REDIS_REPLICA_ACK_TIMEOUT_MS').default(DEFAULT_REPLICA_ACK_TIMEOUT_MS),
  // braces allowed: on Redis Cluster BullMQ wants a hash-tagged prefix such as {bull}
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.{}-]+$/, 'QUEUE_PREFIX may hold only letters, digits, "_", ".", "-" and a {hash tag}')
    .default(DEFAULT_QUEUE_PREFIX),
  /** Shards of the `calls` queue and each campaign's records (callShards.ts); the same in every process. */
  CALL_SHARDS: positiveInt('CALL_SHARDS').max(MAX_CALL_SHARDS, `CALL_SHARDS must be at most ${MAX_CALL_SHARDS}`).optional(),
  LIVEKIT_URL: z.string().url('LIVEKIT_URL must be a URL like wss://my-project.livekit.cloud').optional(),
  LIVEKIT_API_KEY: z.string().optional(),
  LIVEKIT_API_SECRET: z.string().optional(),
  SIP_OUTBOUND_TRUNK_ID: z.string().optional(),
  AGENT_NAME: z.string().min(1).default(DEFAULT_AGENT_NAME),
  DIAL_CPS: z.coerce.number({ error: 'DIAL_CPS must be a number' }).positive('DIAL_CPS must be > 0').default(DEFAULT_DIAL_CPS),
  DIAL_CONCURRENCY: positiveInt('DIAL_CONCURRENCY').default(DEFAULT_DIAL_CONCURRENCY),
  DIAL_MAX_ATTEMPTS: positiveInt('DIAL_MAX_ATTEMPTS').default(DEFAULT_DIAL_MAX_ATTEMPTS),
  DIAL_RINGING_TIMEOUT_S: positiveInt('DIAL_RINGING_TIMEOUT_S').default(DEFAULT_RINGING_TIMEOUT_S),
  DIAL_RETRY_DELAY_S: nonNegative('DIAL_RETRY_DELAY_S').default(DEFAULT_RETRY_DELAY_S),
  /** Per-outcome first-retry delays; each defaults to DIAL_RETRY_DELAY_S. */
  DIAL_RETRY_DELAY_BUSY_S: nonNegative('DIAL_RETRY_DELAY_BUSY_S').optional(),
  DIAL_RETRY_DELAY_NO_ANSWER_S: nonNegative('DIAL_RETRY_DELAY_NO_ANSWER_S').optional(),
  DIAL_RETRY_DELAY_FAILED_S: nonNegative('DIAL_RETRY_DELAY_FAILED_S').optional(),
  /** How long a dial job's lock lives without renewal; a crashed consumer's call is picked up after it. */
  DIAL_LOCK_DURATION_MS: positiveInt('DIAL_LOCK_DURATION_MS')
    .min(MIN_DIAL_LOCK_DURATION_MS, `DIAL_LOCK_DURATION_MS must be at least ${MIN_DIAL_LOCK_DURATION_MS} (a shorter lock lapses on every event-loop stall)`)
    .default(DEFAULT_DIAL_LOCK_DURATION_MS),
  /** LiveKit/network failures one call may meet (each retried without spending an attempt) before it ends as failed. */
  DIAL_MAX_PLATFORM_ERRORS: positiveInt('DIAL_MAX_PLATFORM_ERRORS').default(DEFAULT_DIAL_MAX_PLATFORM_ERRORS),
  /** The queue's first platform back-off (ms); each further failed probe doubles it, up to 60 s. */
  DIAL_PLATFORM_BACKOFF_MS: positiveInt('DIAL_PLATFORM_BACKOFF_MS')
    .max(MAX_DIAL_PLATFORM_BACKOFF_MS, `DIAL_PLATFORM_BACKOFF_MS must be at most ${MAX_DIAL_PLATFORM_BACKOFF_MS} (the back-off's cap)`)
    .default(DEFAULT_DIAL_PLATFORM_BACKOFF_MS),
  /** Calls in progress (from their dial to their outcome) across every consumer and host; unset: no cap. */
  DIAL_MAX_ACTIVE_CALLS: positiveInt('DIAL_MAX_ACTIVE_CALLS').optional(),
  /** Part of DIAL_MAX_ACTIVE_CALLS kept back for inbound calls: outbound dials stop at the cap minus this. */
  DIAL_RESERVED_INBOUND: z.coerce
    .number({ error: 'DIAL_RESERVED_INBOUND must be a number' })
    .int('DIAL_RESERVED_INBOUND must be a whole number')
    .min(0, 'DIAL_RESERVED_INBOUND must be ≥ 0')
    .default(0),
  /** After the answer, how long an agent may take to be in the room before the consumer hangs up (ms). */
  AGENT_JOIN_GRACE_MS: z.coerce
    .number({ error: 'AGENT_JOIN_GRACE_MS must be a number of milliseconds' })
    .int('AGENT_JOIN_GRACE_MS must be a whole number of milliseconds')
    .min(0, 'AGENT_JOIN_GRACE_MS must be ≥ 0')
    .max(MAX_AGENT_JOIN_GRACE_MS, `AGENT_JOIN_GRACE_MS must be at most ${MAX_AGENT_JOIN_GRACE_MS} (the callee hears silence meanwhile)`)
    .default(DEFAULT_AGENT_JOIN_GRACE_MS),
  /** After the answer, how long an agent whose job is assigned may take to be in the room (ms; at least the grace). */
  AGENT_JOIN_ASSIGNED_MAX_MS: z.coerce
    .number({ error: 'AGENT_JOIN_ASSIGNED_MAX_MS must be a number of milliseconds' })
    .int('AGENT_JOIN_ASSIGNED_MAX_MS must be a whole number of milliseconds')
    .min(0, 'AGENT_JOIN_ASSIGNED_MAX_MS must be ≥ 0')
    .max(MAX_AGENT_JOIN_GRACE_MS, `AGENT_JOIN_ASSIGNED_MAX_MS must be at most ${MAX_AGENT_JOIN_GRACE_MS} (the callee hears silence meanwhile)`)
    .default(DEFAULT_AGENT_JOIN_ASSIGNED_MAX_MS),
  /** A connected call whose agent reports nothing within this long ends as `failed` (agent crashed, lost job). */
  CALL_OUTCOME_TIMEOUT_S: positiveInt('CALL_OUTCOME_TIMEOUT_S').default(DEFAULT_CALL_OUTCOME_TIMEOUT_S),
  /** Default calling window for calls that carry none, e.g. 09:00-20:00 (local to DIAL_TIME_ZONE). */
  DIAL_CALL_WINDOW: z.string().optional(),
  /** Weekdays of the default window, e.g. mon-fri (every day when unset). */
  DIAL_CALL_DAYS: z.string().optional(),
  /** IANA time zone of the default window (and of `--window` on the CLI without `--time-zone`). */
  DIAL_TIME_ZONE: z.string().refine(isTimeZone, 'DIAL_TIME_ZONE must be an IANA time zone such as America/New_York').default(DEFAULT_TIME_ZONE),
  /** Country of numbers written without a country code (ISO 3166-1 alpha-2, e.g. US); unset: they are refused. */
  DIAL_DEFAULT_REGION: z.string().refine(isRegion, 'DIAL_DEFAULT_REGION must be a two-letter country code such as US, GB or DE').optional(),
  /** Where the results worker POSTs each call's terminal outcome (optional). */
  RESULTS_WEBHOOK_URL: z.string().url('RESULTS_WEBHOOK_URL must be a URL like https://example.com/hooks/calls').optional(),
  /** Signs webhook bodies (HMAC-SHA256) so the receiver can check they came from the dialer. */
  RESULTS_WEBHOOK_SECRET: z.string().optional(),
  /** Asked before every attempt whether the call should still ring (optional). */
  PREDIAL_CHECK_URL: z.string().url('PREDIAL_CHECK_URL must be a URL like https://example.com/hooks/can-call').optional(),
  /** Signs pre-dial check requests (HMAC-SHA256). */
  PREDIAL_CHECK_SECRET: z.string().optional(),
  /** Serves Prometheus metrics on http://<host>:METRICS_PORT/metrics from `consumer` and `results` (optional). */
  METRICS_PORT: z.coerce
    .number({ error: 'METRICS_PORT must be a port number' })
    .int('METRICS_PORT must be a port number')
    .min(1, 'METRICS_PORT must be 1–65535')
    .max(MAX_PORT, 'METRICS_PORT must be 1–65535')
    .optional(),
  /** Interface the metrics server (and the agent's health server) listens on: loopback unless widened. */
  METRICS_HOST: z
    .string()
    .refine(isListenHost, 'METRICS_HOST must be an IP address or host name to listen on, such as 127.0.0.1 or 0.0.0.0')
    .default(DEFAULT_METRICS_HOST),
  /** Days an ended call's record is kept (a TTL set when it ends); 0 keeps records for ever. */
  RECORD_RETENTION_DAYS: z.coerce
    .number({ error: 'RECORD_RETENTION_DAYS must be a number of days (0 keeps records for ever)' })
    .int('RECORD_RETENTION_DAYS must be a whole number of days (0 keeps records for ever)')
    .min(0, 'RECORD_RETENTION_DAYS must be ≥ 0 (0 keeps records for ever)')
    .max(MAX_RECORD_RETENTION_DAYS, `RECORD_RETENTION_DAYS must be at most ${MAX_RECORD_RETENTION_DAYS} (0 keeps records for ever)`)
    .default(DEFAULT_RECORD_RETENTION_DAYS),
  /** Port of `dialer serve` (0: any free port, logged at start). */
  API_PORT: z.coerce
    .number({ error: 'API_PORT must be a port number' })
    .int('API_PORT must be a port number')
    .min(0, 'API_PORT must be 0–65535')
    .max(MAX_PORT, 'API_PORT must be 0–65535')
    .default(DEFAULT_API_PORT),
  /** Address `dialer serve` listens on (0.0.0.0 for every interface). */
  API_HOST: z.string().min(1).default(DEFAULT_API_HOST),
  /** Bearer tokens of `dialer serve`: `token` or `token:scope+scope`, comma-separated; checked by `serve` (src/api/tokens.ts). */
  API_TOKENS: z.string().optional(),
  /** Requests one API token may make per second, across every API process (counted in Redis). */
  API_RATE_LIMIT: positiveInt('API_RATE_LIMIT').default(DEFAULT_API_RATE_LIMIT),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface LiveKitSettings {
  url: string;
  apiKey: string;
  apiSecret: string;
}

export interface RetryDelays {
  busyMs: number;
  noAnswerMs: number;
  failedMs: number;
}

/** The validated settings every part of the dialer starts from. */
export interface DialerConfig {
  /** REDIS_URL as given (shown in messages); connect through `redis`. */
  redisUrl: string;
  /** Where Redis is: REDIS_URL alone, or the primary REDIS_SENTINELS name (see RedisTarget). */
  redis: RedisTarget;
  /**
   * REDIS_DIAL_REPLICA_ACKS / REDIS_REPLICA_ACK_TIMEOUT_MS: replicas that must hold a dial's sent mark before it is
   * sent, and how long to wait for them (ms); undefined: no wait (a single node, or set to 0).
   */
  dialReplicaAcks: { replicas: number; timeoutMs: number } | undefined;
  queuePrefix: string;
  /** CALL_SHARDS: the `calls` queue's shards under QUEUE_PREFIX, and where each campaign lives (callShards.ts). */
  callShards: CallShards;
  agentName: string;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  livekit: Partial<LiveKitSettings>;
  sipOutboundTrunkId: string | undefined;
  /** RESULTS_WEBHOOK_URL / RESULTS_WEBHOOK_SECRET; undefined: no webhooks. */
  webhook: { url: string; secret: string | undefined } | undefined;
  /** METRICS_PORT: where `/metrics` is served; undefined: not served. */
  metricsPort: number | undefined;
  /** METRICS_HOST: the interface `/metrics` and the agent's health server listen on (127.0.0.1 by default). */
  metricsHost: string;
  /** RECORD_RETENTION_DAYS: days an ended call's record is kept; 0: for ever. */
  recordRetentionDays: number;
  /** PREDIAL_CHECK_URL / PREDIAL_CHECK_SECRET; undefined: every call is eligible. */
  predialCheck: { url: string; secret: string | undefined } | undefined;
  /** `dialer serve`: API_PORT, API_HOST, API_TOKENS (unparsed: only `serve` needs them), API_RATE_LIMIT per token per second. */
  api: { port: number; host: string; tokens: string | undefined; rateLimitPerSecond: number };
  dial: {
    cps: number;
    concurrency: number;
    maxAttempts: number;
    ringingTimeoutS: number;
    retryDelays: RetryDelays;
    lockDurationMs: number;
    /** DIAL_MAX_PLATFORM_ERRORS: platform failures a call may meet before it ends as `failed`. */
    maxPlatformErrors: number;
    /** DIAL_PLATFORM_BACKOFF_MS: the queue's first platform back-off; each further failed probe doubles it, up to 60 s. */
    platformBackoffMs: number;
    outcomeTimeoutMs: number;
    /** AGENT_JOIN_GRACE_MS: after the answer, how long an agent may take to be in the room before the call is hung up. */
    agentJoinGraceMs: number;
    /**
     * AGENT_JOIN_ASSIGNED_MAX_MS: after the answer, how long an agent whose job LiveKit assigned may take to be in the
     * room before the call is hung up (the grace when smaller).
     */
    agentJoinAssignedMaxMs: number;
    /**
     * DIAL_MAX_ACTIVE_CALLS / DIAL_RESERVED_INBOUND: calls in progress across every process (undefined: no cap), and
     * how many of them are kept for inbound calls (outbound dials stop at `maxActiveCalls - reservedInbound`).
     */
    activeCalls: { max: number; reservedInbound: number } | undefined;
    /** Calling window for calls that carry none (DIAL_CALL_WINDOW); undefined: any time. */
    callWindow: CallWindow | undefined;
    /** DIAL_TIME_ZONE: the zone of windows given without one. */
    timeZone: string;
    /** DIAL_DEFAULT_REGION: the country of numbers written without a country code; undefined: they are refused. */
    defaultRegion: CountryCode | undefined;
  };
}

/** Settings whose values are credentials: a message about one never shows its value. */
const SECRET_SETTING = /(SECRET|PASSWORD|TOKENS?|_KEY)$/;
/** A URL's user-info password (`redis://user:pass@host`), masked in what a message shows. */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i;
/** Longer values are cut in messages (a pasted file, a long list). */
const MAX_SHOWN_VALUE_CHARS = 120;

/**
 * One bad setting as one line: `NAME: what is wrong (got "value")`. The value is left out for a credential (by its
 * name: …SECRET, …PASSWORD, …TOKENS, …_KEY) and when there is none; a URL's password is masked; a long value is cut.
 */
export function settingProblem(name: string, problem: string, value?: string): string {
  if (value === undefined || SECRET_SETTING.test(name)) return `${name}: ${problem}`;
  const masked = value.replace(URL_PASSWORD, '$1:***@');
  const shown = masked.length > MAX_SHOWN_VALUE_CHARS ? `${masked.slice(0, MAX_SHOWN_VALUE_CHARS)}…` : masked;
  return `${name}: ${problem} (got ${JSON.stringify(shown)})`;
}

/** A ConfigError for one bad setting (settingProblem's line). */
export function settingError(name: string, problem: string, value?: string): ConfigError {
  return new ConfigError(settingProblem(name, problem, value));
}

/**
 * Validates environment variables against `schema` (empty strings count as unset); throws one ConfigError with one
 * line per bad variable (settingProblem: its name once, what is wrong, the value unless secret), in the schema's order.
 */
export function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const present = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    // one line per variable, its problems joined; a message that repeats the variable's name ("DIAL_CPS must be…")
    // says it once
    const byName = new Map<string, string[]>();
    for (const issue of parsed.error.issues) {
      const name = issue.path.map(String).join('.');
      const problem = issue.message.startsWith(`${name} `) ? issue.message.slice(name.length + 1) : issue.message;
      const list = byName.get(name) ?? [];
      if (!list.includes(problem)) list.push(problem);
      byName.set(name, list);
    }
    const lines = [...byName].map(([name, list]) => settingProblem(name, list.join('; '), present[name]));
    throw new ConfigError(lines.join('\n'));
  }
  return parsed.data;
}

/** REDIS_URL and the REDIS_SENTINEL_* settings as one RedisTarget, or a ConfigError naming the bad setting. */
function redisTarget(e: z.infer<typeof envSchema>): RedisTarget {
  const url = e.REDIS_URL;
  try {
    if (e.REDIS_CLUSTER_NODES !== undefined) {
      if (e.REDIS_SENTINELS !== undefined) throw new ConfigError('REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one of them, not both');
      // BullMQ keeps a queue's keys in one slot only under a hash-tagged prefix; the dialer's scripts need the same
      if (hashTag(e.QUEUE_PREFIX) === undefined) {
        throw settingError(
          'QUEUE_PREFIX',
          `on Redis Cluster it must carry a non-empty hash tag such as {${e.QUEUE_PREFIX.replace(/[{}]/g, '') || 'dialer'}}, so each queue's keys and each script's keys share a slot`,
          e.QUEUE_PREFIX,
        );
      }
      return { kind: 'cluster', url, nodes: parseHostPorts(e.REDIS_CLUSTER_NODES, 'REDIS_CLUSTER_NODES', DEFAULT_REDIS_PORT) };
    }
    if (e.REDIS_SENTINELS === undefined) return { kind: 'node', url };
    const list = parseHostPorts(e.REDIS_SENTINELS, 'REDIS_SENTINELS', DEFAULT_SENTINEL_PORT);
    const sentinelPassword = e.REDIS_SENTINEL_PASSWORD;
    return { kind: 'sentinel', url, sentinels: list, name: e.REDIS_SENTINEL_NAME, ...(sentinelPassword ? { sentinelPassword } : {}) };
  } catch (err) {
    // its message names the setting and shows the entry that is wrong
    if (err instanceof RedisAddressError) throw new ConfigError(err.message);
    throw err;
  }
}

function replicaAcks(replicas: number, timeoutMs: number): DialerConfig['dialReplicaAcks'] {
  return replicas > 0 ? { replicas, timeoutMs } : undefined;
}

/** Validates the environment once at start-up; throws ConfigError listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): DialerConfig {
  const e = parseEnv(envSchema, env);
  // Every store and queue this process builds for the prefix finds its campaigns' shards from here on. Unset, the count
  // stays what this process knows for the prefix (one, unless a configuration that set it was loaded before): a
  // helper reading a few settings of its own (the simulated agent) must not undo its host's count.
  if (e.CALL_SHARDS !== undefined) configureCallShards(e.QUEUE_PREFIX, e.CALL_SHARDS);
  return {
    redisUrl: e.REDIS_URL,
    redis: redisTarget(e),
    dialReplicaAcks: replicaAcks(e.REDIS_DIAL_REPLICA_ACKS ?? (e.REDIS_SENTINELS === undefined ? 0 : 1), e.REDIS_REPLICA_ACK_TIMEOUT_MS),
    queuePrefix: e.QUEUE_PREFIX,
    callShards: callShardsOf(e.QUEUE_PREFIX),
    agentName: e.AGENT_NAME,
    logLevel: e.LOG_LEVEL,
    livekit: { url: e.LIVEKIT_URL, apiKey: e.LIVEKIT_API_KEY, apiSecret: e.LIVEKIT_API_SECRET },
    sipOutboundTrunkId: e.SIP_OUTBOUND_TRUNK_ID,
    webhook: e.RESULTS_WEBHOOK_URL ? { url: e.RESULTS_WEBHOOK_URL, secret: e.RESULTS_WEBHOOK_SECRET } : undefined,
    predialCheck: e.PREDIAL_CHECK_URL ? { url: e.PREDIAL_CHECK_URL, secret: e.PREDIAL_CHECK_SECRET } : undefined,
    metricsPort: e.METRICS_PORT,
    api: { port: e.API_PORT, host: e.API_HOST, tokens: e.API_TOKENS, rateLimitPerSecond: e.API_RATE_LIMIT },
    metricsHost: e.METRICS_HOST,
    recordRetentionDays: e.RECORD_RETENTION_DAYS,
    dial: {
      cps: e.DIAL_CPS,
      concurrency: e.DIAL_CONCURRENCY,
      maxAttempts: e.DIAL_MAX_ATTEMPTS,
      ringingTimeoutS: e.DIAL_RINGING_TIMEOUT_S,
      retryDelays: {
        busyMs: (e.DIAL_RETRY_DELAY_BUSY_S ?? e.DIAL_RETRY_DELAY_S) * SECOND,
        noAnswerMs: (e.DIAL_RETRY_DELAY_NO_ANSWER_S ?? e.DIAL_RETRY_DELAY_S) * SECOND,
        failedMs: (e.DIAL_RETRY_DELAY_FAILED_S ?? e.DIAL_RETRY_DELAY_S) * SECOND,
      },
      lockDurationMs: e.DIAL_LOCK_DURATION_MS,
      maxPlatformErrors: e.DIAL_MAX_PLATFORM_ERRORS,
      platformBackoffMs: e.DIAL_PLATFORM_BACKOFF_MS,
      outcomeTimeoutMs: e.CALL_OUTCOME_TIMEOUT_S * SECOND,
      agentJoinGraceMs: e.AGENT_JOIN_GRACE_MS,
      agentJoinAssignedMaxMs: e.AGENT_JOIN_ASSIGNED_MAX_MS,
      activeCalls: activeCallCap(e.DIAL_MAX_ACTIVE_CALLS, e.DIAL_RESERVED_INBOUND),
      callWindow: defaultCallWindow(e.DIAL_CALL_WINDOW, e.DIAL_CALL_DAYS, e.DIAL_TIME_ZONE),
      timeZone: e.DIAL_TIME_ZONE,
      defaultRegion: e.DIAL_DEFAULT_REGION === undefined ? undefined : parseRegion(e.DIAL_DEFAULT_REGION, 'DIAL_DEFAULT_REGION'),
    },
  };
}

/** DIAL_MAX_ACTIVE_CALLS / DIAL_RESERVED_INBOUND as a cap, or a ConfigError naming the variable. */
function activeCallCap(max: number | undefined, reservedInbound: number): DialerConfig['dial']['activeCalls'] {
  if (max === undefined) {
    if (reservedInbound > 0) throw settingError('DIAL_RESERVED_INBOUND', 'needs DIAL_MAX_ACTIVE_CALLS (the cap it is kept from)', String(reservedInbound));
    return undefined;
  }
  if (reservedInbound >= max) {
    throw settingError('DIAL_RESERVED_INBOUND', `must be below DIAL_MAX_ACTIVE_CALLS (${max}), or no outbound call could ever be dialed`, String(reservedInbound));
  }
  return { max, reservedInbound };
}

/** DIAL_CALL_WINDOW / DIAL_CALL_DAYS / DIAL_TIME_ZONE as a window, or a ConfigError naming the variable. */
function defaultCallWindow(hours: string | undefined, days: string | undefined, timeZone: string): CallWindow | undefined {
  if (hours === undefined) {
    if (days !== undefined) throw settingError('DIAL_CALL_DAYS', 'needs DIAL_CALL_WINDOW (the hours, e.g. 09:00-20:00)', days);
    return undefined;
  }
  try {
    return parseCallWindow(hours, timeZone, days);
  } catch (err) {
    const aboutDays = days !== undefined && /weekdays/.test(errorMessage(err));
    // the parser's `, not "<value>"` becomes the line's `(got "<value>")`
    const problem = errorMessage(err).replace(/, not ".*"$/, '');
    throw aboutDays ? settingError('DIAL_CALL_DAYS', problem, days) : settingError('DIAL_CALL_WINDOW', problem, hours);
  }
}

/** Throws one ConfigError naming every missing variable (so a fresh setup is fixed in one go). */
function requireSet(values: Record<string, string | undefined>, hint: string): void {
  const missing = Object.entries(values)
    .filter(([, value]) => !value)
    .map(([name]) => name);
  if (missing.length) throw new ConfigError(`${missing.map((name) => `${name} is not set`).join(', ')} (${hint})`);
}

/** The LiveKit credentials, or a ConfigError naming every missing variable. */
export function requireLiveKit(config: DialerConfig): LiveKitSettings {
  const { url, apiKey, apiSecret } = config.livekit;
  requireSet(
    { LIVEKIT_URL: url, LIVEKIT_API_KEY: apiKey, LIVEKIT_API_SECRET: apiSecret },
    'LIVEKIT_URL is e.g. wss://my-project.livekit.cloud; key and secret come from the project settings',
  );
  return { url: url ?? '', apiKey: apiKey ?? '', apiSecret: apiSecret ?? '' };
}

/** What the dial worker needs from LiveKit: credentials and the outbound trunk, with every missing variable named. */
export function requireDialSettings(config: DialerConfig): LiveKitSettings & { trunkId: string } {
  const { url, apiKey, apiSecret } = config.livekit;
  requireSet(
    { LIVEKIT_URL: url, LIVEKIT_API_KEY: apiKey, LIVEKIT_API_SECRET: apiSecret, SIP_OUTBOUND_TRUNK_ID: config.sipOutboundTrunkId },
    'see .env.example; list trunks with `lk sip outbound list`',
  );
  return { url: url ?? '', apiKey: apiKey ?? '', apiSecret: apiSecret ?? '', trunkId: config.sipOutboundTrunkId ?? '' };
}

/** The outbound SIP trunk id, or a ConfigError naming the variable. */
export function requireOutboundTrunk(config: DialerConfig): string {
  if (!config.sipOutboundTrunkId) {
    throw new ConfigError('SIP_OUTBOUND_TRUNK_ID is not set (list trunks with `lk sip outbound list`)');
  }
  return config.sipOutboundTrunkId;
}
