/**
 * The commands that run until a signal (`consumer`, `results`, `schedule run`) and Redis being away, through the real
 * `dialer` command: at start they give README's exit 4 and its one line, as the one-shot commands do, instead of
 * logging "started" and waiting; and a consumer whose Redis goes away stops at once on SIGTERM when no call is in
 * flight, instead of waiting out its drain timeout.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli, type CliRun } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

/** README exit-code table: Redis cannot be reached. */
const EXIT_UNAVAILABLE = 4;
/**
 * Longest a command may take to give up on a Redis that refuses connections. The drain's own bound is
 * DIAL_RINGING_TIMEOUT_S + 60 s; this is well under it, and long enough for a CLI start through tsx on a busy machine.
 */
const GIVE_UP_WITHIN_MS = 40_000;
const TEST_TIMEOUT_MS = 120_000;
/** LiveKit settings the consumer requires; nothing is dialed, so nothing listens there. */
const LIVEKIT = { LIVEKIT_URL: 'http://127.0.0.1:9', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret', SIP_OUTBOUND_TRUNK_ID: 'ST_test' };

const url = testRedisUrl();
const prefix = uniquePrefix('redis-away-cli');

afterAll(async () => {
  await deleteKeysWithPrefix(url, prefix);
});

/** The run's end, or a failure naming what was still running after `ms` (the process is killed then). */
async function endWithin(cli: ReturnType<typeof startCli>, ms: number, what: string): Promise<CliRun> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      cli.child.kill('SIGKILL');
      reject(new Error(`${what} still running after ${ms} ms; stderr: ${cli.output().stderr.slice(-600)}`));
    }, ms);
  });
  try {
    return await Promise.race([cli.done, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP proxy to the test Redis that can be cut: Redis goes away for whoever connects through it. */
async function startRedisProxy(): Promise<{ url: string; cut: () => Promise<void> }> {
  const target = new URL(url);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('proxy has no port');
  return {
    url: `redis://127.0.0.1:${address.port}`,
    cut: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

describe('long-running commands with Redis away', () => {
  it('consumer, results and schedule run exit 4 at start with the one line every command gives', { timeout: TEST_TIMEOUT_MS }, async () => {
    const away = { REDIS_URL: 'redis://127.0.0.1:1', QUEUE_PREFIX: prefix, LOG_LEVEL: 'info', ...LIVEKIT };
    const runs = await Promise.all(
      [['consumer'], ['results'], ['schedule', 'run']].map((args) => endWithin(startCli(args, away), GIVE_UP_WITHIN_MS, args.join(' '))),
    );
    for (const run of runs) {
      expect(run.code).toBe(EXIT_UNAVAILABLE);
      expect(run.stderr).toContain('dialer: cannot reach Redis at 127.0.0.1:1 (ECONNREFUSED): start Redis there, or set REDIS_URL to where it runs\n');
      expect(run.stderr).not.toContain('consumer started');
    }
  });

  it('a consumer whose Redis went away, with no call in flight, stops at once on SIGTERM with exit 4', { timeout: TEST_TIMEOUT_MS }, async () => {
    const proxy = await startRedisProxy();
    const consumer = startCli(['consumer'], { REDIS_URL: proxy.url, QUEUE_PREFIX: prefix, LOG_LEVEL: 'info', ...LIVEKIT });
    try {
      await waitFor(() => (consumer.output().stderr.includes('consumer started') ? true : undefined), GIVE_UP_WITHIN_MS, 'consumer started');
      await proxy.cut();
      consumer.child.kill('SIGTERM');
      const run = await endWithin(consumer, GIVE_UP_WITHIN_MS, 'the drain');
      expect(run.code, `signal ${String(consumer.child.signalCode)}; stderr: ${run.stderr.slice(-2000)}`).toBe(EXIT_UNAVAILABLE);
      expect(run.stderr).toContain(`dialer: cannot reach Redis at ${new URL(proxy.url).host} (ECONNREFUSED)`);
    } finally {
      if (consumer.child.exitCode === null) consumer.child.kill('SIGKILL');
      await proxy.cut().catch(() => undefined);
    }
  });
});
