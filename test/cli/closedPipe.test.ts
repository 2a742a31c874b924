/**
 * `dialer … | head`: a reader that closes the pipe early. Through the real `dialer` command, every command stops
 * quietly with exit 0 at its next write (EPIPE), instead of dying with an unhandled-error stack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { startCli, type CliRun } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const url = testRedisUrl();
const prefix = uniquePrefix('closed-pipe');
const env = { REDIS_URL: url, QUEUE_PREFIX: prefix };
/** A CLI start through tsx on a busy 2-core machine, plus a frame or two of the watch (one a second). */
const WITHIN_MS = 60_000;
let connection: Redis;

beforeAll(async () => {
  connection = createProducerConnection(url);
  await waitUntilReady(connection);
  const producer = new CallProducer({ connection, prefix, maxAttempts: 1 });
  // a call no consumer dials: the watch keeps redrawing until it is stopped
  await producer.enqueueCall({ phoneNumber: '+14155550950', campaignId: 'pipe' });
  await producer.close();
});

afterAll(async () => {
  await deleteKeysWithPrefix(connection, prefix);
  await closeConnection(connection);
});

/** Runs the command, closes its stdout once the first output arrives (as `head -1` would), and waits for its end. */
async function readFirstThenClose(args: string[]): Promise<CliRun> {
  const cli = startCli(args, env);
  const stdout = cli.child.stdout;
  if (!stdout) throw new Error('no stdout pipe');
  await waitFor(() => (cli.output().stdout.length > 0 ? true : undefined), WITHIN_MS, `output of ${args.join(' ')}`);
  stdout.destroy();
  return cli.done;
}

describe('a reader that closes the pipe', () => {
  it('report --watch stops with exit 0 and no EPIPE stack', { timeout: 2 * WITHIN_MS }, async () => {
    const run = await readFirstThenClose(['report', '--campaign', 'pipe', '--watch']);
    expect(run.stderr).not.toMatch(/EPIPE|Error/);
    expect(run.code).toBe(0);
  });

  it('a one-shot command whose reader is gone before it writes stops with exit 0 and no stack', { timeout: 2 * WITHIN_MS }, async () => {
    const cli = startCli(['campaigns'], env);
    cli.child.stdout?.destroy();
    const run = await cli.done;
    expect(run.stderr).not.toMatch(/EPIPE|Error/);
    expect(run.code).toBe(0);
  });
});
