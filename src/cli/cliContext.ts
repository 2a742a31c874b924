import { config as loadDotenv } from 'dotenv';
import type { RedisClient } from '../core/redisClient.js';
import { loadConfig, type DialerConfig } from '../core/config.js';
import { createLogger, type Logger } from '../core/logger.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { describeRedisTarget, type RedisTarget } from '../core/redisTarget.js';
import { RedisUnavailableError, exitWithError } from './exitCodes.js';
import { errorCode, errorMessage } from '../core/errors.js';

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
    err.message.startsWith("Stream isn't writeable")
  );
}

/**
 * The one message every command gives when Redis cannot be reached, with where it looked (REDIS_URL's host, or the
 * Sentinel primary and its sentinels) and what to do.
 */
export function redisUnavailable(target: string | RedisTarget, err: unknown): RedisUnavailableError {
  const where = describeRedisTarget(typeof target === 'string' ? { kind: 'node', url: target } : target);
  const cause = errorCode(err) ?? errorMessage(err);
  return new RedisUnavailableError(`cannot reach Redis at ${where} (${cause}): start Redis there, or set REDIS_URL to where it runs`);
}

/**
 * Runs `body` on a fresh command connection to the configured Redis and closes it whatever happens. A Redis that
 * cannot be reached, before or during `body`, becomes RedisUnavailableError (exit 4, the same line for every command).
 */
export async function withRedis<T>(config: DialerConfig, body: (redis: RedisClient) => Promise<T>): Promise<T> {
  const redis = createProducerConnection(config.redis);
  try {
    try {
      await waitUntilReady(redis);
    } catch (err) {
      throw redisUnavailable(config.redis, err);
    }
    return await body(redis);
  } catch (err) {
    throw isConnectionLoss(err) ? redisUnavailable(config.redis, err) : err;
  } finally {
    await closeConnection(redis);
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
 * The RedisUnavailableError for the configured Redis when it does not answer within STOP_REDIS_CHECK_MS, else
 * undefined. A long-running command asks this when a stop request arrives: work that needs only Redis cannot finish
 * while it is away, so there is nothing to wait for.
 */
export async function redisAwayError(config: DialerConfig): Promise<RedisUnavailableError | undefined> {
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
