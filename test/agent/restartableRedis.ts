/**
 * A test-owned redis-server on a free loopback port that a test can take away and bring back on the same port (AOF
 * on, in a temporary directory, so nothing written before the outage is lost). Away means connections are refused,
 * as during a restart or failover. (A SIGSTOPped Redis, or CLIENT PAUSE, only delays commands: ioredis has no
 * command timeout and sends them once Redis answers again, so a reporter never sees an error; measured.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisAnswers } from '../../src/core/localRedis.js';
import { SECOND, sleep } from '../../src/core/time.js';

const START_TIMEOUT_MS = 10 * SECOND;
const POLL_MS = 50;

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface RestartableRedis {
  url: string;
  /** Stops the server (SIGTERM, AOF flushed) and waits until it has exited: connections are refused from then on. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it for good and removes its data. */
  close(): Promise<void>;
}

export async function startRestartableRedis(): Promise<RestartableRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'dialer-test-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const start = async () => {
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction'],
      { stdio: 'ignore' },
    );
    child = proc;
    const failed = new Promise<Error>((resolve) => proc.once('error', resolve));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const failure = await Promise.race([failed, sleep(POLL_MS).then(() => undefined)]);
      if (failure) throw failure;
      if (await redisAnswers(url)) return;
    }
    proc.kill('SIGKILL');
    throw new Error(`redis-server did not answer on port ${port} within ${START_TIMEOUT_MS} ms`);
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    await exited;
  };

  await start();
  return {
    url,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
