import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { DEFAULT_REDIS_URL } from './config.js';
import { sleep, SECOND } from './time.js';
import { errorMessage } from './errors.js';

const PING_TIMEOUT_MS = 1500;
const REDIS_START_TIMEOUT_MS = 10 * SECOND;
const REDIS_START_POLL_MS = 50;

/** A Redis the caller can use, and how to let go of it when it was started for them. */
export interface ProvidedRedis {
  url: string;
  source: 'REDIS_URL' | 'default' | 'docker' | 'redis-server';
  stop(): Promise<void>;
}

/** True when a Redis answers PING at `url` within a short timeout. */
export async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: PING_TIMEOUT_MS,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined); // the failed ping below is the answer; nothing to log
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Waits for a child process to exit, at most `timeoutMs` (then kills it). */
async function stopChild(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

const REDIS_STOP_TIMEOUT_MS = 5 * SECOND;

/**
 * Starts `redis-server` on a loopback port (no persistence, noeviction as the dialer requires): a free one, or
 * `port` (to start it again where a stopped one was). `stop()` resolves once the server has exited.
 */
export async function startRedisServer(options: { binary?: string; port?: number } = {}): Promise<ProvidedRedis> {
  const binary = options.binary ?? 'redis-server';
  const port = options.port ?? (await freePort());
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'],
    { stdio: 'ignore' },
  );
  const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve));
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + REDIS_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const failure = await Promise.race([spawnFailed, sleep(REDIS_START_POLL_MS).then(() => undefined)]);
    if (failure) throw failure;
    if (await redisAnswers(url)) {
      return {
        url,
        source: 'redis-server',
        stop: () => stopChild(child, REDIS_STOP_TIMEOUT_MS),
      };
    }
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer on port ${port} within ${REDIS_START_TIMEOUT_MS} ms`);
}

export interface FindRedisOptions {
  env?: NodeJS.ProcessEnv;
  /** Where a machine's own Redis usually answers (default 127.0.0.1:6379). */
  defaultUrl?: string;
  /** Tried after the default address and before redis-server (tests pass testcontainers here). */
  docker?: () => Promise<ProvidedRedis | undefined>;
}

/** No Redis could be found or started: REDIS_URL does not answer, or neither the default address nor redis-server did. */
export class NoRedisError extends Error {
  override readonly name = 'NoRedisError';
}

/**
 * Finds a Redis: REDIS_URL, then 127.0.0.1:6379, then Docker (if offered), then a local redis-server, else a clear
 * error (NoRedisError).
 */
export async function findOrStartRedis(options: FindRedisOptions = {}): Promise<ProvidedRedis> {
  const env = options.env ?? process.env;
  const noop = async () => undefined;
  if (env.REDIS_URL) {
    if (await redisAnswers(env.REDIS_URL)) return { url: env.REDIS_URL, source: 'REDIS_URL', stop: noop };
    throw new NoRedisError(`REDIS_URL is set to ${env.REDIS_URL} but no Redis answers there`);
  }
  const defaultUrl = options.defaultUrl ?? DEFAULT_REDIS_URL;
  if (await redisAnswers(defaultUrl)) return { url: defaultUrl, source: 'default', stop: noop };
  const docker = await options.docker?.();
  if (docker) return docker;
  try {
    return await startRedisServer();
  } catch (err) {
    throw new NoRedisError(
      `No Redis found: nothing answers at ${defaultUrl}, REDIS_URL is unset, and redis-server could not be started ` +
        `(${errorMessage(err)}). Start Redis 7 (e.g. \`apt-get install redis-server\` or \`docker compose up -d redis\`) ` +
        `or set REDIS_URL.`,
    );
  }
}
