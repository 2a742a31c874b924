import { verifyCallShards } from '../core/callShards.js';
import { config as loadDotenv } from 'dotenv';
import type { RedisClient } from '../core/redisClient.js';
import { DEFAULT_SENTINEL_NAME, loadConfig, settingError, type DialerConfig } from '../core/config.js';
import { createLogger, type Logger } from '../core/logger.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { describeRedisTarget, type RedisTarget } from '../core/redisTarget.js';
import { topologyMismatch } from '../core/redisTopologyMismatch.js';
import { RedisUnavailableError, exitWithError } from './exitCodes.js';
import { errorCode, errorMessage, type ConfigError } from '../core/errors.js';

export { EXIT_FAILURE, EXIT_INVALID_INPUT, EXIT_PARTIAL, EXIT_UNAVAILABLE, exitWithError } from './exitCodes.js';

/** What every command starts from: validated settings and the process logger. */
export interface CliContext {
  config: DialerConfig;
  logger: Logger;
}

let cached: { env: NodeJS.ProcessEnv; context: CliContext } | undefined;

/**
 * Loads `.env` (without overriding the real environment) and validates the settings, once per process environment:
 * a test that runs commands in its own process (runCommandLine) with an environment object of its own gets them anew.
 */
export function cliContext(): CliContext {
  if (cached?.env !== process.env) {
    const env = process.env;
    loadDotenv({ quiet: true });
    const config = loadConfig(env);
    cached = { env, context: { config, logger: createLogger(config.logLevel) } };
  }
  return cached.context;
}

/**
 * Socket errors and ioredis' own words for a command that met a lost connection: Redis went away mid-command. Decided
 * by code and ioredis' fixed messages (utils CONNECTION_CLOSED_ERROR_MSG, the offline-queue refusal, its retry limit).
 */
const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
function isConnectionLoss(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = errorCode(err);
  return (
    (code !== undefined && CONNECTION_ERROR_CODES.has(code)) ||
    err.name === 'MaxRetriesPerRequestError' ||
    err.message === 'Connection is closed.' ||
    err.message.startsWith("Stream isn't writeable") ||
    // ioredis' Cluster giving up on a command whose node is away, and a cluster that refuses commands while a
    // master is down (cluster state fail)
    err.message.startsWith(CLUSTER_GAVE_UP) ||
    err.message.startsWith(CLUSTER_DOWN_REPLY) ||
    err.message === COMMAND_TIMED_OUT
  );
}

/** ioredis' error for a command with no answer within its `commandTimeout` (ioredis 5.11 built/Command.js). */
const COMMAND_TIMED_OUT = 'Command timed out';

/**
 * How long a command's Redis command may wait for its answer (ioredis `commandTimeout`) before the command gives up
 * with the one "cannot reach Redis" line (exit 4): a Redis that froze after the connection was ready (a SIGSTOPped
 * node, a cluster node that stopped answering mid-command) otherwise held `report` or `enqueue` for ever. Far above
 * any one command of a one-shot command (the largest, a batch script of an import, takes milliseconds).
 */
export const COMMAND_ANSWER_WAIT_MS = 30_000;

/** ioredis' Cluster error once a command met only failures (the node serving its slot away) for maxRedirections. */
const CLUSTER_GAVE_UP = 'Too many Cluster redirections';
/** What each node of a Redis Cluster answers while the cluster's state is fail (a master down with no replica). */
const CLUSTER_DOWN_REPLY = 'CLUSTERDOWN';

/**
 * How long a command waits for its connection to be ready, ioredis' own connect timeout: a Redis that accepts the
 * connection but never answers (a frozen process, a host gone behind a kept socket) or a Redis Cluster whose state is
 * not ok (ioredis' Cluster then reconnects without an error, for ever) is away (exit 4), not a command that hangs.
 */
export const READY_WAIT_MS = 10_000;

/** waitUntilReady, bounded by READY_WAIT_MS: rejects saying what did not answer when the connection is not ready by then. */
async function readyWithin(redis: RedisClient, target: RedisTarget): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    const why = target.kind === 'cluster' ? 'a node does not answer, or the cluster state is not ok' : 'it does not answer';
    timer = setTimeout(() => reject(new Error(`not ready within ${READY_WAIT_MS / 1000} s: ${why}`)), READY_WAIT_MS);
  });
  try {
    await Promise.race([waitUntilReady(redis), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Redis Sentinel's reply when it monitors no primary of the name asked (sentinel.c, SENTINEL SENTINELS / MASTER). */
const NO_SUCH_PRIMARY_REPLY = 'No such master with that name';
/** How ioredis' SentinelConnector says that no sentinel gave it a primary, and the last sentinel's error after it. */
const NO_SENTINEL_ANSWER = /^All sentinels are unreachable\b.*?(?:Last error: (.*))?$/s;

/**
 * The one message every command gives when Redis cannot be reached: where it looked (REDIS_URL's host, the Sentinel
 * primary and its sentinels, the cluster's seed nodes), why, and which setting says where it runs (REDIS_URL,
 * REDIS_SENTINELS, REDIS_CLUSTER_NODES): a RedisUnavailableError, exit 4. Sentinels that answer that they monitor no
 * primary of REDIS_SENTINEL_NAME's name are not an outage but a wrong setting: a ConfigError naming it (exit 2).
 */
export function redisUnavailable(target: string | RedisTarget, err: unknown): RedisUnavailableError | ConfigError {
  const resolved: RedisTarget = typeof target === 'string' ? { kind: 'node', url: target } : target;
  const where = describeRedisTarget(resolved);
  const message = errorMessage(err);
  const cause = errorCode(err) ?? message;
  const unavailable = (why: string, advice: string) => new RedisUnavailableError(`cannot reach Redis at ${where} (${why}): ${advice}`);
  const mismatch = topologyMismatch(resolved, err);
  if (mismatch) return mismatch;
  switch (resolved.kind) {
    case 'node':
      return unavailable(cause, 'start Redis there, or set REDIS_URL to where it runs');
    case 'cluster':
      return unavailable(cause, "start the cluster's nodes there, or set REDIS_CLUSTER_NODES to where they run");
    case 'sentinel': {
      const sentinels = resolved.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
      if (message.includes(NO_SUCH_PRIMARY_REPLY)) {
        return settingError(
          'REDIS_SENTINEL_NAME',
          `the sentinels at ${sentinels} monitor no primary of that name ("${DEFAULT_SENTINEL_NAME}" when unset): set it to the name in their "sentinel monitor <name> …" line`,
          resolved.name,
        );
      }
      const noSentinel = NO_SENTINEL_ANSWER.exec(message);
      if (noSentinel) {
        const last = noSentinel[1]?.trim();
        return unavailable(`no sentinel answered${last ? `; last error: ${last}` : ''}`, 'start the sentinels there, or set REDIS_SENTINELS to where they run');
      }
      return unavailable(cause, 'the primary the sentinels name does not answer: start it (or let the sentinels fail over to a replica)');
    }
  }
}

/**
 * Runs `body` on a fresh command connection to the configured Redis and closes it whatever happens. A Redis that
 * cannot be reached, or is not ready within READY_WAIT_MS, before or during `body`, becomes RedisUnavailableError
 * (exit 4, the same line for every command), or the ConfigError of a wrong REDIS_SENTINEL_NAME (exit 2): redisUnavailable. A Redis that answers but is not the
 * topology the settings describe (REDIS_URL on a cluster node, REDIS_CLUSTER_NODES on a plain Redis) is the ConfigError
 * naming the setting to change (exit 2): topologyMismatch. Each Redis command waits at most
 * `limits.commandAnswerWaitMs` (COMMAND_ANSWER_WAIT_MS) for its answer; one that gets none is Redis being away too.
 */
export async function withRedis<T>(
  config: DialerConfig,
  body: (redis: RedisClient) => Promise<T>,
  limits: { commandAnswerWaitMs: number } = { commandAnswerWaitMs: COMMAND_ANSWER_WAIT_MS },
): Promise<T> {
  const redis = createProducerConnection(config.redis, { commandTimeout: limits.commandAnswerWaitMs });
  /** Redis went away during `body` (a lost connection, an answer overdue): QUIT would wait for it in vain too. */
  let lost = false;
  try {
    try {
      await readyWithin(redis, config.redis);
    } catch (err) {
      throw redisUnavailable(config.redis, err);
    }
    // a process with another CALL_SHARDS than the calls were set up with would look for them in the wrong shards
    await verifyCallShards(redis, config.callShards);
    return await body(redis);
  } catch (err) {
    lost = isConnectionLoss(err);
    throw lost ? redisUnavailable(config.redis, err) : (topologyMismatch(config.redis, err) ?? err);
  } finally {
    // QUIT to a Redis that never became ready, or stopped answering, waits for an answer that does not come: drop the
    // socket instead
    if (redis.status === 'ready' && !lost) await closeConnection(redis);
    else redis.disconnect();
  }
}

/**
 * For commands that run until a signal (`consumer`, `results`, `schedule run`): checks once, at start, that Redis
 * answers, with the same bounded check and the same error as every one-shot command (withRedis: the first connection
 * error, or ioredis' connect timeout), so a Redis that is away ends the command with exit 4 and the one line instead of
 * a process that logs "started" and waits.
 */
export async function requireRedis(config: DialerConfig): Promise<void> {
  await withRedis(config, async () => undefined);
}

/** How long a stopping command waits for Redis to answer before taking it as away (ioredis' connect timeout). */
export const STOP_REDIS_CHECK_MS = 2000;

/**
 * The RedisUnavailableError for the configured Redis when it does not answer within STOP_REDIS_CHECK_MS (or
 * redisUnavailable's ConfigError for a wrong REDIS_SENTINEL_NAME), else undefined. A long-running command asks this when a stop request arrives: work that needs only Redis cannot finish
 * while it is away, so there is nothing to wait for.
 */
export async function redisAwayError(config: DialerConfig): Promise<RedisUnavailableError | ConfigError | undefined> {
  const redis = createProducerConnection(config.redis, { connectTimeout: STOP_REDIS_CHECK_MS, retryStrategy: () => null });
  try {
    await waitUntilReady(redis);
    return undefined;
  } catch (err) {
    return redisUnavailable(config.redis, err);
  } finally {
    await closeConnection(redis);
  }
}

/** Runs a command body, turning thrown errors into a readable line and the right exit code. */
export function action<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (err) {
      exitWithError(err);
    }
  };
}
