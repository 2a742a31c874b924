/**
 * A server port another process holds: `serve` (API_PORT) and `results` (METRICS_PORT), through the real `dialer`
 * command, exit 2 (README: a setting the command cannot accept) with one line naming the setting to change, instead
 * of exit 1 and a bare EADDRINUSE.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

/** README exit-code table: refused input, settings included. */
const EXIT_INVALID_INPUT = 2;
const CLI_TIMEOUT_MS = 120_000;
const url = testRedisUrl();
const prefix = uniquePrefix('port-in-use');
let holder: Server;
let port: number;

beforeAll(async () => {
  holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const address = holder.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  port = address.port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  await deleteKeysWithPrefix(url, prefix);
});

describe('a port another process holds', () => {
  it('serve exits 2 naming API_PORT; results exits 2 naming METRICS_PORT', { timeout: CLI_TIMEOUT_MS }, async () => {
    const env = { REDIS_URL: url, QUEUE_PREFIX: prefix };
    const [serve, results] = await Promise.all([
      runCli(['serve'], { ...env, API_PORT: String(port), API_HOST: '127.0.0.1', API_TOKENS: 'port-in-use-test-token-0123456789abcdef' }),
      runCli(['results'], { ...env, METRICS_PORT: String(port), METRICS_HOST: '127.0.0.1' }),
    ]);
    expect(serve.code).toBe(EXIT_INVALID_INPUT);
    expect(serve.stderr).toContain(`dialer: API_PORT: port ${port} is already in use on 127.0.0.1 (another process listens there): pick a free port, or stop that process (got "${port}")\n`);
    expect(results.code).toBe(EXIT_INVALID_INPUT);
    expect(results.stderr).toContain(`dialer: METRICS_PORT: port ${port} is already in use on 127.0.0.1`);
  });
});
