/**
 * A Redis that takes the connection but never answers (a frozen process; a Redis Cluster whose state is fail, where
 * ioredis reconnects for ever without an error) is away: every command exits 4 with the one line after READY_WAIT_MS
 * instead of hanging for ever. A fresh tester of issue 14 found `campaigns`, `report` and `enqueue` still running
 * after 120 s on a 3-master cluster with one master down, even for a prefix whose slot was on a live master, and on
 * a SIGSTOPped single node. And a command whose cluster node went away mid-command printed ioredis' "Too many Cluster
 * redirections …" and exited 1, not the cluster's line and 4.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { READY_WAIT_MS, withRedis } from '../../src/cli/cliContext.js';
import { EXIT_UNAVAILABLE, RedisUnavailableError } from '../../src/cli/exitCodes.js';
import { loadConfig } from '../../src/core/config.js';
import { runCliInProcess } from '../helpers/runCli.js';
import { testRedisEnv, uniquePrefix } from '../helpers/testRedis.js';

/** Slack over READY_WAIT_MS for the command's start and its close on a loaded machine. */
const SLACK_MS = 15_000;

describe('a Redis that takes the connection and never answers', () => {
  let silent: Server;
  const sockets: Socket[] = [];
  let port = 0;

  beforeAll(async () => {
    // accepts, reads and never writes: what a SIGSTOPped redis-server looks like once the kernel took the connection
    silent = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('makes a command exit 4 with the one line after READY_WAIT_MS, not hang', { timeout: READY_WAIT_MS + SLACK_MS }, async () => {
    const started = Date.now();
    const run = await runCliInProcess(['campaigns'], { REDIS_URL: `redis://127.0.0.1:${port}`, QUEUE_PREFIX: 't-not-ready' });
    expect(run.stderr).toBe(
      `dialer: cannot reach Redis at 127.0.0.1:${port} (not ready within ${READY_WAIT_MS / 1000} s: it does not answer): start Redis there, or set REDIS_URL to where it runs\n`,
    );
    expect(run.code).toBe(EXIT_UNAVAILABLE);
    expect(Date.now() - started).toBeGreaterThanOrEqual(READY_WAIT_MS);
  });
});

describe('a cluster command ioredis gives up on', () => {
  it.each(['Too many Cluster redirections. Last error: Error: Connection is closed.', 'CLUSTERDOWN The cluster is down'])(
    '"%s" is Redis being away (exit 4), not a failure (exit 1)',
    async (message) => {
      const config = loadConfig({ ...testRedisEnv(), QUEUE_PREFIX: uniquePrefix('not-ready') });
      const run = withRedis(config, () => Promise.reject(new Error(message)));
      await expect(run).rejects.toBeInstanceOf(RedisUnavailableError);
    },
  );
});
