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
import type { RedisClient } from '../../src/core/redisClient.js';
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

/**
 * A Redis stand-in that answers (RESP, every command: INFO as a ready server, GET as a missing key, the rest +OK) until
 * `freeze()`, then reads and never answers again: a node that stopped after the connection was ready.
 */
async function startFreezingRedis(): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      // one RESP array per command: *<n>\r\n then n times $<len>\r\n<bytes>\r\n
      for (;;) {
        const parsed = parseCommand(pending);
        if (!parsed) return;
        pending = pending.slice(parsed.length);
        if (frozen) continue;
        const name = parsed.args[0]?.toUpperCase();
        if (name === 'INFO') {
          const info = '# Server\r\nredis_version:7.0.0\r\nloading:0\r\n';
          socket.write(`$${info.length}\r\n${info}\r\n`);
        } else if (name === 'GET') socket.write('$-1\r\n');
        else socket.write('+OK\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    freeze: () => {
      frozen = true;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The first RESP command in `text` and how many characters it took, or undefined while it is incomplete. */
function parseCommand(text: string): { args: string[]; length: number } | undefined {
  const header = /^\*(\d+)\r\n/.exec(text);
  if (!header) return undefined;
  let at = header[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(header[1]); i++) {
    const bulk = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (!bulk) return undefined;
    const start = at + bulk[0].length;
    const end = start + Number(bulk[1]);
    if (text.length < end + 2) return undefined;
    args.push(text.slice(start, end));
    at = end + 2;
  }
  return { args, length: at };
}

describe('a Redis that stops answering after the connection was ready', () => {
  /** The test's answer wait: short, so that the test takes a second (the commands' own is COMMAND_ANSWER_WAIT_MS). */
  const ANSWER_WAIT_MS = 1000;

  it("ends the command with Redis away (exit 4's error) once a command's answer is overdue, instead of waiting for ever", { timeout: 20_000 }, async () => {
    const redis = await startFreezingRedis();
    try {
      const config = loadConfig({ REDIS_URL: `redis://127.0.0.1:${redis.port}`, QUEUE_PREFIX: 't-frozen' });
      const started = Date.now();
      const run = withRedis(
        config,
        async (connection: RedisClient) => {
          expect(await connection.get('t-frozen:before')).toBeNull(); // it answers while it runs
          redis.freeze();
          return connection.get('t-frozen:after');
        },
        { commandAnswerWaitMs: ANSWER_WAIT_MS },
      );
      await expect(run).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(run).rejects.toThrow(`cannot reach Redis at 127.0.0.1:${redis.port} (Command timed out)`);
      // the overdue answer, not a QUIT waited for after it as well
      expect(Date.now() - started).toBeGreaterThanOrEqual(ANSWER_WAIT_MS);
      expect(Date.now() - started).toBeLessThan(2 * ANSWER_WAIT_MS);
    } finally {
      await redis.close();
    }
  });
});
