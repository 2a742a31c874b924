/**
 * The long-running commands announce that they run only once SIGTERM reaches their drain: a supervisor (or a test)
 * that sends SIGTERM on reading "consumer started" must get a drain and exit code, never death by the signal. A
 * loaded run saw exactly that (signal SIGTERM, exit code null): the line was written before the handlers were set.
 * A preload (test/fixtures/signalsAtStartedLine.mjs) reports how many SIGTERM listeners the process had when it wrote
 * the line.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const prefix = uniquePrefix('started-line');
const PRELOAD = fileURLToPath(new URL('../fixtures/signalsAtStartedLine.mjs', import.meta.url));
/** A command's start on a loaded machine (process start, Redis, its workers). */
const START_WITHIN_MS = 40_000;
const TEST_TIMEOUT_MS = 90_000;
const LIVEKIT = { LIVEKIT_URL: 'http://127.0.0.1:9', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret', SIP_OUTBOUND_TRUNK_ID: 'ST_test' };

afterAll(async () => {
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

describe('the line that says a command runs', () => {
  it.each([
    ['consumer', ['consumer'], 'consumer started'],
    ['results', ['results'], 'results worker started'],
    ['serve', ['serve'], 'API listening'],
  ])('%s writes it only once SIGTERM is handled, and drains on a SIGTERM sent on it', { timeout: TEST_TIMEOUT_MS }, async (_name, args, line) => {
    const cli = startCli(args, {
      REDIS_URL: testRedisUrl(),
      QUEUE_PREFIX: prefix,
      LOG_LEVEL: 'info',
      API_PORT: '0',
      API_TOKENS: 'started-line-token',
      NODE_OPTIONS: `--import ${PRELOAD}`,
      ...LIVEKIT,
    });
    try {
      await waitFor(() => (cli.output().stderr.includes(line) ? true : undefined), START_WITHIN_MS, line);
      cli.child.kill('SIGTERM');
      const run = await cli.done;
      const listeners = /sigterm-listeners-at-started-line=(\d+)/.exec(run.stderr)?.[1];
      expect(Number(listeners), run.stderr.slice(-2000)).toBeGreaterThan(0);
      expect(run.code, `signal ${String(cli.child.signalCode)}`).toBe(0);
    } finally {
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
    }
  });
});
