import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { createLogger, type Logger } from './logger.js';
import type { RedisClient } from './redisClient.js';
import { connectionArguments, credentialsOf, type RedisTarget } from './redisTarget.js';
import { errorCode } from './errors.js';

/**
 * Connection-level failures: the socket could not be opened, was reset, or a command met a closed connection. ioredis
 * emits one on every reconnect attempt (every 50 ms to 2 s while Redis is away).
 */
const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
/** ioredis' own words for a command on a closed connection (utils CONNECTION_CLOSED_ERROR_MSG) and its retry limit. */
const CONNECTION_CLOSED_MESSAGE = 'Connection is closed.';
const MAX_RETRIES_ERROR_NAME = 'MaxRetriesPerRequestError';
/**
 * ioredis' SentinelConnector when no sentinel gave a reachable primary (during a failover, until the replica is
 * promoted): "All sentinels are unreachable. Retrying from scratch after <n>ms." (connectors/SentinelConnector).
 */
const NO_SENTINEL_PRIMARY_MESSAGE = 'All sentinels are unreachable';
/** ioredis' Cluster when no seed or known node answers (ClusterAllFailedError, cluster/index). */
const CLUSTER_ALL_FAILED_MESSAGES = ['Failed to refresh slots cache', 'None of startup nodes is available'];
/**
 * ioredis' Cluster when a command's retries ran out while the node serving its slot was away (every refused
 * connection, MOVED back to the missing node, CLUSTERDOWN and TRYAGAIN reply counts as one; cluster/index
 * handleError), and Redis' own reply while a slot has no reachable master.
 */
const CLUSTER_REDIRECTIONS_MESSAGE = 'Too many Cluster redirections';
const CLUSTER_DOWN_REPLY = 'CLUSTERDOWN';

/** True for errors that mean "Redis is not reachable right now" rather than a failed command. */
export function isRedisConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = errorCode(err);
  return (
    (code !== undefined && CONNECTION_ERROR_CODES.has(code)) ||
    err.message === CONNECTION_CLOSED_MESSAGE ||
    err.message.startsWith(NO_SENTINEL_PRIMARY_MESSAGE) ||
    CLUSTER_ALL_FAILED_MESSAGES.some((m) => err.message.startsWith(m)) ||
    err.message.startsWith(CLUSTER_REDIRECTIONS_MESSAGE) ||
    err.message.startsWith(CLUSTER_DOWN_REPLY) ||
    err.name === MAX_RETRIES_ERROR_NAME
  );
}

/**
 * Emitted (instead of `error`) with every connection error of an `OutageReportingRedis`, for code that must react to
 * the first failure, such as `waitUntilReady`.
 */
export const REDIS_CONNECTION_ERROR_EVENT = 'redis:connection-error';

/** How a connection reports outages: its name in the logs, the logger, and at which level. */
export interface ConnectionReporting {
  /** Shown as `connection` on every line (default `worker-<n>` / `producer-<n>`; duplicates add `.dup<k>`). */
  name?: string;
  /** Default: a pino logger on stderr at LOG_LEVEL, component `redis`. */
  logger?: Logger;
  /**
   * `warn`: the loss is a warning and the recovery info (long-lived workers). `debug`: both at debug (fail-fast
   * producer connections, whose callers report the failure themselves).
   */
  level?: 'warn' | 'debug';
}

let defaultLogger: Logger | undefined;
function redisLogger(): Logger {
  defaultLogger ??= createLogger().child({ component: 'redis' });
  return defaultLogger;
}

let connectionCount = 0;

/** The longest wait before a connection ioredis ended against its retry strategy connects again. */
const MAX_RECONNECT_AFTER_END_MS = 2000;

/** Something with EventEmitter's `on`, checked by shape. */
function isListenable(value: unknown): value is Pick<NodeJS.EventEmitter, 'on'> {
  return typeof value === 'object' && value !== null && typeof Reflect.get(value, 'on') === 'function';
}

/**
 * An ioredis client that reports a Redis outage through pino once, as two state changes: "Redis connection lost"
 * (the first connection error, with its message and code) and "Redis connection restored" (with the outage's length
 * and how many reconnect attempts failed). The connection errors of every reconnect attempt in between are counted,
 * not emitted as `error`: BullMQ re-emits client errors on every Queue, Worker and QueueEvents sharing the client, and
 * prints a multi-line `console.error` dump for each one without an `error` listener. They are emitted as
 * `REDIS_CONNECTION_ERROR_EVENT` instead. Command errors and other client errors still reach `error` listeners.
 * `duplicate()` (BullMQ's blocking connections) returns a client that reports the same way.
 */
export class OutageReportingRedis extends Redis {
  private readonly reporting: Required<ConnectionReporting>;
  private duplicates: number;
  private closingOnPurpose: boolean;
  private everReady: boolean;
  private outage: { since: number; failedAttempts: number } | undefined;

  /** `url` as ioredis takes it (its fields win over `options`), or undefined when `options` say where Redis is. */
  constructor(url: string | undefined, options: RedisOptions, reporting: Required<ConnectionReporting>) {
    if (url === undefined) super(options);
    else super(url, options);
    this.reporting = reporting;
    this.duplicates = 0;
    this.closingOnPurpose = false;
    this.everReady = false;
    this.on('ready', () => this.onReady());
    this.on('end', () => this.onEnd());
    // each connection through Sentinel makes a new failover detector, with new sentinel clients (see below)
    if (options.failoverDetector === true) {
      this.on('connect', () => this.listenToSentinelErrors());
      this.on('ready', () => this.listenToSentinelErrors());
    }
    // A socket that closes under a ready connection is the outage's start, even when the first reconnect succeeds
    // (a Redis restarted within ioredis' first retry delay would otherwise pass unlogged).
    this.on('close', () => {
      if (this.everReady && !this.closingOnPurpose && this.status !== 'end') this.onConnectionError(new Error(CONNECTION_CLOSED_MESSAGE));
    });
  }

  /** True once this process closed the connection itself (quit or disconnect): it will not connect again. */
  get closedOnPurpose(): boolean {
    return this.closingOnPurpose;
  }

  override duplicate(override?: Partial<RedisOptions>): Redis {
    this.duplicates += 1;
    const name = `${this.reporting.name}.dup${this.duplicates}`;
    return new OutageReportingRedis(undefined, { ...this.options, ...override }, { ...this.reporting, name });
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) {
      this.closingOnPurpose = true;
      this.stopReconnecting();
    }
    super.disconnect(reconnect);
  }

  /** `quit()` goes through here: a connection we close ourselves is not an outage. */
  override sendCommand(...args: Parameters<Redis['sendCommand']>): unknown {
    if (args[0].name === 'quit') {
      this.closingOnPurpose = true;
      this.stopReconnecting();
    }
    return super.sendCommand(...args);
  }

  /** ioredis routes every client-level `error` through here (Redis.js silentEmit). */
  override silentEmit(eventName: string, arg?: unknown): boolean {
    if (eventName !== 'error' || !(arg instanceof Error) || !isRedisConnectionError(arg)) return super.silentEmit(eventName, arg);
    if (this.status === 'end' || this.closingOnPurpose) return false; // as ioredis: nothing to report while closing
    this.onConnectionError(arg);
    this.emit(REDIS_CONNECTION_ERROR_EVENT, arg);
    return true;
  }

  /**
   * Through Sentinel (`failoverDetector: true`) ioredis subscribes to `+switch-master` on every sentinel over
   * connections of its own, and closes them on `disconnect()` but not when the client ends through `quit()` (ioredis
   * issue #1362; ioredis 5.11 has no fix): each closed connection left one socket per sentinel open, which kept a
   * finished process alive. Once the client has ended for good, `disconnect()` lets go of them (ioredis' maintainer
   * in #1362: "Calling .disconnect() should properly clean up everything"); it sends nothing.
   */
  private releaseFailoverDetector(): void {
    if (this.options.failoverDetector === true) super.disconnect();
  }

  /** The failover detectors' sentinel clients given an error listener (listenToSentinelErrors). */
  private readonly sentinelClientsHeard = new WeakSet<object>();

  /**
   * Through Sentinel, ioredis' failover detector opens a client to each sentinel of REDIS_SENTINELS, reconnecting it
   * on its own, but gives those clients no `error` listener (ioredis 5.11 built/connectors/SentinelConnector
   * initFailoverDetector, FailoverDetector.js; ioredis #1600), so with one listed sentinel down ioredis printed
   * "[ioredis] Unhandled error event: Error: connect ECONNREFUSED …" and a stack on stderr, outside pino, at every
   * attempt. The detector is only reachable through ioredis' private fields (`connector.failoverDetector.sentinels`),
   * read here defensively: where their shape differs nothing is done. A sentinel that cannot be reached is said once
   * per client as a warn line (its failover notices are missed until it is back; the others still send theirs).
   */
  private listenToSentinelErrors(): void {
    const connector: unknown = Reflect.get(this, 'connector');
    const detector: unknown = typeof connector === 'object' && connector !== null ? Reflect.get(connector, 'failoverDetector') : undefined;
    const sentinels: unknown = typeof detector === 'object' && detector !== null ? Reflect.get(detector, 'sentinels') : undefined;
    if (!Array.isArray(sentinels)) return;
    for (const sentinel of sentinels as unknown[]) {
      if (typeof sentinel !== 'object' || sentinel === null) continue;
      const client: unknown = Reflect.get(sentinel, 'client');
      // an ioredis client is an EventEmitter by mixin, not by prototype: `instanceof EventEmitter` is false
      if (!isListenable(client) || this.sentinelClientsHeard.has(client)) continue;
      this.sentinelClientsHeard.add(client);
      const address: unknown = Reflect.get(sentinel, 'address');
      const where =
        typeof address === 'object' && address !== null ? `${String(Reflect.get(address, 'host') ?? '127.0.0.1')}:${String(Reflect.get(address, 'port') ?? '')}` : '?';
      let said = false;
      client.on('error', (err: Error) => {
        if (said || this.closingOnPurpose) return;
        said = true;
        this.log('warn', { sentinel: where, error: { message: err.message, code: errorCode(err) } }, 'Redis sentinel not reachable: its failover notices are missed until it is back');
      });
    }
  }

  private log(level: 'warn' | 'info', fields: Record<string, unknown>, msg: string): void {
    const { logger, level: configured, name } = this.reporting;
    const line = { connection: name, ...fields };
    if (configured === 'debug') logger.debug(line, msg);
    else logger[level](line, msg);
  }

  private onConnectionError(err: Error): void {
    if (this.outage) {
      this.outage.failedAttempts += 1;
      return;
    }
    this.outage = { since: Date.now(), failedAttempts: 1 };
    const error = { message: err.message, code: errorCode(err) };
    this.log('warn', { error }, this.everReady ? 'Redis connection lost' : 'Redis not reachable yet');
  }

  private onReady(): void {
    this.everReady = true;
    this.endsInARow = 0;
    if (!this.outage) return;
    const { since, failedAttempts } = this.outage;
    this.outage = undefined;
    // at the loss line's level: a reader of warn lines alone (LOG_LEVEL=warn, an alert on warn) sees the outage end too
    this.log('warn', { downMs: Date.now() - since, failedAttempts }, 'Redis connection restored');
  }

  private onEnd(): void {
    if (this.closingOnPurpose) {
      this.releaseFailoverDetector();
      return;
    }
    const retryDelayMs = this.options.retryStrategy?.(1);
    if (typeof retryDelayMs === 'number') {
      this.connectAgain(retryDelayMs);
      return;
    }
    this.releaseFailoverDetector();
    if (!this.outage) return;
    this.log('warn', { downMs: Date.now() - this.outage.since, failedAttempts: this.outage.failedAttempts }, 'Redis connection given up');
    this.outage = undefined;
  }

  private reconnectTimer: NodeJS.Timeout | undefined;
  private endsInARow = 0;

  /**
   * ioredis ended a connection it was told to keep retrying. Through Sentinel that happens when its failover detector
   * hears `+switch-master` while the client is between sockets, asking the sentinels for the new primary: the
   * detector disconnects the connector, whose connect() then rejects with "Connection is closed.", and Redis._connect
   * sets the status to `end` with no retry (ioredis 5.11 built/Redis.js, built/connectors/SentinelConnector). A
   * loaded CI run lost its results worker's connection this way in the middle of a failover: every result after it
   * stayed unapplied. The connection connects again after ioredis' own retry delay, growing with each end in a row.
   */
  private connectAgain(retryDelayMs: number): void {
    this.endsInARow += 1;
    const delayMs = Math.min(retryDelayMs * this.endsInARow, MAX_RECONNECT_AFTER_END_MS);
    this.log('warn', { delayMs, endsInARow: this.endsInARow }, 'Redis connection ended by ioredis while it should retry; connecting again');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closingOnPurpose || this.status !== 'end') return;
      // connect() rejects when this attempt fails too; ioredis emits its error and ends again (handled by onEnd)
      this.connect().catch(() => undefined);
    }, delayMs);
  }

  private stopReconnecting(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }
}

function reportingFor(kind: 'worker' | 'producer', reporting: ConnectionReporting): Required<ConnectionReporting> {
  connectionCount += 1;
  return {
    name: reporting.name ?? `${kind}-${connectionCount}`,
    logger: reporting.logger ?? redisLogger(),
    level: reporting.level ?? (kind === 'worker' ? 'warn' : 'debug'),
  };
}

/**
 * How long ioredis waits, through Sentinel, for a socket it ends on `disconnect()` to close before it destroys it
 * (its `disconnectTimeout`, 2000 ms by default). Each close of a connection through Sentinel ends the primary's socket
 * once more after `quit()` had closed it (releaseFailoverDetector): a closed socket sends no second `close`, so
 * ioredis' timer ran its full length and kept a finished command alive 2 s after its answer (AbstractConnector
 * disconnect, ioredis 5.11). Long enough for a FIN exchange on a LAN; a socket not closed by then is only destroyed
 * (`disconnect()` already drops what is unsent), which also moves off a frozen old primary sooner after a failover.
 */
export const SENTINEL_DISCONNECT_TIMEOUT_MS = 200;

/** A demoted primary answers writes with READONLY (after a Sentinel failover, until ioredis hears of the switch). */
const READONLY_REPLY = 'READONLY';
/** ioredis `reconnectOnError` answer: reconnect, then resend the failed command (ioredis README, "Reconnect on error"). */
const RECONNECT_AND_RESEND = 2;

/**
 * ioredis arguments for `target` (a REDIS_URL string or a validated RedisTarget) with `defaults` under `extra`.
 * Through Sentinel a write that meets a demoted primary reconnects (ioredis asks the sentinels again) and is resent,
 * ioredis subscribes to the sentinels' `+switch-master` to move before the old primary fails a command, and a socket
 * it ends is destroyed after SENTINEL_DISCONNECT_TIMEOUT_MS.
 */
function argumentsFor(target: string | NodeTarget, defaults: RedisOptions, extra: RedisOptions): { url: string | undefined; options: RedisOptions } {
  const { url, options } = connectionArguments(typeof target === 'string' ? { kind: 'node', url: target } : target);
  const failover: RedisOptions =
    options.sentinels === undefined
      ? {}
      : {
          failoverDetector: true,
          disconnectTimeout: SENTINEL_DISCONNECT_TIMEOUT_MS,
          reconnectOnError: (err: Error) => (err.message.startsWith(READONLY_REPLY) ? RECONNECT_AND_RESEND : false),
        };
  return { url, options: { ...options, ...failover, ...defaults, ...extra } };
}

/** A target that is one Redis server process (a node, or the primary Sentinel names): an ioredis `Redis`. */
type NodeTarget = Exclude<RedisTarget, { kind: 'cluster' }>;

/**
 * A Redis Cluster client reporting outages like OutageReportingRedis: one line when no node answers, one when it is
 * back. ioredis' Cluster follows MOVED/ASK redirections and re-reads the slots when a node fails over.
 */
function clusterConnection(
  target: Extract<RedisTarget, { kind: 'cluster' }>,
  nodeOptions: RedisOptions,
  clusterOptions: ClusterOptions,
  reporting: Required<ConnectionReporting>,
): Cluster {
  const cluster = new Cluster(
    target.nodes.map((n) => ({ host: n.host, port: n.port })),
    { ...clusterOptions, redisOptions: { ...credentialsOf(target.url), ...nodeOptions } },
  );
  let outageSince: number | undefined;
  let closing = false;
  const { logger, name, level } = reporting;
  const log = (lineLevel: 'warn' | 'info', fields: Record<string, unknown>, msg: string) =>
    level === 'debug' ? logger.debug({ connection: name, ...fields }, msg) : logger[lineLevel]({ connection: name, ...fields }, msg);
  cluster.on('error', (err: Error) => {
    if (closing || !isRedisConnectionError(err) || outageSince !== undefined) return;
    outageSince = Date.now();
    log('warn', { error: { message: err.message } }, 'Redis Cluster not reachable');
  });
  cluster.on('ready', () => {
    if (outageSince === undefined) return;
    log('warn', { downMs: Date.now() - outageSince }, 'Redis Cluster connection restored'); // at the loss line's level
    outageSince = undefined;
  });
  cluster.on('end', () => {
    closing = true;
  });
  return cluster;
}

/**
 * A worker's cluster commands wait out a node that is away (restarted, frozen, failing over) as a worker's commands
 * on one node do (`maxRetriesPerRequest: null`): ioredis' Cluster retries such a command every 100 ms
 * (retryDelayOnFailover, retryDelayOnClusterDown; at once after a MOVED to the missing node) and gave up after its
 * default 16 tries, about a second, so the dial worker's write of a SIP answer failed during a node restart and the
 * number was dialed again (chaos test on a cluster, issue 14). This many tries last 5 to 10 minutes, longer than
 * a cluster failover (cluster-node-timeout, 15 s by default, plus the election), and still end a redirection loop.
 * A caller that bounds its retries (`maxRetriesPerRequest` set to a number) keeps ioredis' default.
 */
export const CLUSTER_WORKER_MAX_REDIRECTIONS = 6000;

/**
 * Connection for BullMQ workers: blocking commands must wait out Redis restarts, never give up mid-job. Outages are
 * logged once each (warn when lost, info when restored). `target`: REDIS_URL, or the config's RedisTarget (Sentinel,
 * Cluster).
 */
export function createWorkerConnection(target: string | NodeTarget, extra?: RedisOptions, reporting?: ConnectionReporting): Redis;
export function createWorkerConnection(target: string | RedisTarget, extra?: RedisOptions, reporting?: ConnectionReporting): RedisClient;
export function createWorkerConnection(target: string | RedisTarget, extra: RedisOptions = {}, reporting: ConnectionReporting = {}): RedisClient {
  const defaults: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true };
  if (typeof target !== 'string' && target.kind === 'cluster') {
    const nodeOptions = { ...defaults, ...extra };
    const waitsOut = nodeOptions.maxRetriesPerRequest === null;
    return clusterConnection(
      target,
      nodeOptions,
      { enableReadyCheck: true, ...(waitsOut ? { maxRedirections: CLUSTER_WORKER_MAX_REDIRECTIONS } : {}) },
      reportingFor('worker', reporting),
    );
  }
  const { url, options } = argumentsFor(target, defaults, extra);
  return new OutageReportingRedis(url, options, reportingFor('worker', reporting));
}

/**
 * Connection for producers and commands: fail fast instead of queueing writes while Redis is away. Outages are logged
 * at debug level: the caller sees the failed command and reports it. `target` as for createWorkerConnection.
 */
export function createProducerConnection(target: string | NodeTarget, extra?: RedisOptions, reporting?: ConnectionReporting): Redis;
export function createProducerConnection(target: string | RedisTarget, extra?: RedisOptions, reporting?: ConnectionReporting): RedisClient;
export function createProducerConnection(target: string | RedisTarget, extra: RedisOptions = {}, reporting: ConnectionReporting = {}): RedisClient {
  const defaults: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false };
  if (typeof target !== 'string' && target.kind === 'cluster') {
    const { enableOfflineQueue, lazyConnect, ...nodeOptions } = { ...defaults, ...extra };
    return clusterConnection(target, nodeOptions, { enableOfflineQueue, lazyConnect }, reportingFor('producer', reporting));
  }
  const { url, options } = argumentsFor(target, defaults, extra);
  return new OutageReportingRedis(url, options, reportingFor('producer', reporting));
}

/**
 * Resolves once the connection is ready (a producer connection without an offline queue must wait for it); rejects
 * with the first error, connection errors included.
 */
export async function waitUntilReady(connection: RedisClient): Promise<void> {
  if (connection.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      connection.off('ready', onReady);
      connection.off('error', onError);
      connection.off(REDIS_CONNECTION_ERROR_EVENT, onError);
    };
    const onReady = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    connection.once('ready', onReady);
    connection.once('error', onError);
    connection.once(REDIS_CONNECTION_ERROR_EVENT, onError);
  });
}

/**
 * True when `connection` will never carry a command again: this process closed it (quit or disconnect), or it ended
 * with nothing to bring it back. Not while an OutageReportingRedis that ioredis ended is about to connect again
 * (status `end` for a moment through Sentinel: connectAgain).
 */
export function closedForGood(connection: RedisClient): boolean {
  if (connection instanceof OutageReportingRedis) return connection.closedOnPurpose;
  return connection.status === 'end';
}

/** Closes a connection whatever state it is in; never throws. */
export async function closeConnection(connection: RedisClient): Promise<void> {
  try {
    if (connection.status === 'end') return;
    await connection.quit();
  } catch {
    connection.disconnect();
  }
}

/** Anything that emits `error`: a BullMQ Queue, Worker, QueueEvents or FlowProducer, an ioredis client. */
export interface ErrorSource {
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * Gives a BullMQ object an `error` listener (without one BullMQ prints each error as a multi-line dump): connection
 * errors at debug level, since the connection reports the outage itself (OutageReportingRedis), anything else as
 * `<name> error` at error level.
 */
export function logRedisErrors(source: ErrorSource, name: string, logger: Logger = redisLogger()): void {
  source.on('error', (err) => {
    if (isRedisConnectionError(err)) logger.debug({ err: err.message, source: name }, 'Redis connection error');
    else logger.error({ err, source: name }, `${name} error`);
  });
}
