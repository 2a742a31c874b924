import { request as httpRequest } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { DUPLICATE_SIGNAL_WINDOW_MS } from '../../src/core/shutdownSignals.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { runCli, startCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';
import { API_TOKENS, TOKENS, body, call } from './apiFixture.js';

const prefix = uniquePrefix('api-serve');
/** Each test starts the real CLI: on a loaded 2-core machine its start alone has taken over 20 s. */
const CLI_TEST_TIMEOUT_MS = 240_000;
const CLI_START_TIMEOUT_MS = 150_000;
const env = { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix, API_PORT: '0', API_TOKENS, LOG_LEVEL: 'info' };

afterAll(async () => {
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

/** Starts `dialer serve` and waits for its "API listening" log line; returns the child and its URL. */
async function serve(extra: Record<string, string> = {}) {
  const cli = startCli(['serve'], { ...env, ...extra });
  const port = await waitFor(
    () => {
      for (const line of cli.output().stderr.split('\n')) {
        if (!line.includes('API listening')) continue;
        const parsed = JSON.parse(line) as { port?: number };
        if (parsed.port) return parsed.port;
      }
      if (cli.child.exitCode !== null) throw new Error(`serve exited ${cli.child.exitCode}: ${cli.output().stderr}`);
      return undefined;
    },
    CLI_START_TIMEOUT_MS,
    'serve to listen',
  );
  return { ...cli, url: `http://127.0.0.1:${port}`, port };
}

/**
 * A POST whose headers and first half of the body are sent now and the rest when `finish()` is called: a request that
 * is in progress for as long as the test wants.
 */
function slowPost(url: string, path: string, payload: unknown) {
  const text = JSON.stringify(payload);
  const half = Math.floor(text.length / 2);
  let settle: (v: { status: number; text: string } | { error: string }) => void = () => undefined;
  const answer = new Promise<{ status: number; text: string } | { error: string }>((resolve) => (settle = resolve));
  const req = httpRequest(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), authorization: `Bearer ${TOKENS.enqueue}` },
  });
  req.on('response', (res) => {
    let data = '';
    res.on('data', (d: Buffer) => (data += d.toString()));
    res.on('end', () => settle({ status: res.statusCode ?? 0, text: data }));
  });
  req.on('error', (err) => settle({ error: err.message }));
  req.write(text.slice(0, half));
  return { answer, finish: () => req.end(text.slice(half)) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('dialer serve', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('listens on API_HOST:API_PORT, enqueues, and drains on the first SIGTERM: a request in progress is answered, then it exits 0', async () => {
    const server = await serve();
    let slow: ReturnType<typeof slowPost>;
    try {
      expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
      const created = await call(server.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155551001', campaign_id: 'serve' } });
      expect(created.status).toBe(201);
      expect(String(body(created).call_id)).toMatch(/^c-/);
      slow = slowPost(server.url, '/v1/calls', { phone_number: '+14155551002', campaign_id: 'serve', metadata: { note: 'x'.repeat(2000) } });
      await sleep(500); // the server has the headers: the request is in progress
    } finally {
      server.child.kill('SIGTERM');
    }
    await sleep(500);
    expect(server.child.exitCode).toBeNull(); // still waiting for that request
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow(); // no new connections meanwhile
    slow.finish();
    expect(await slow.answer).toMatchObject({ status: 201 });
    expect((await server.done).code).toBe(0);
  });

  it('stops at once on a second SIGTERM, cutting a request that never finishes', async () => {
    const server = await serve();
    const slow = slowPost(server.url, '/v1/calls', { phone_number: '+14155551003', campaign_id: 'serve' });
    await sleep(500);
    server.child.kill('SIGTERM');
    // a second signal within this window is a copy of the first (npm and the terminal both deliver one Ctrl-C)
    await sleep(DUPLICATE_SIGNAL_WINDOW_MS + 500);
    expect(server.child.exitCode).toBeNull();
    const forcedAt = Date.now();
    server.child.kill('SIGTERM');
    expect((await server.done).code).toBe(0);
    expect(Date.now() - forcedAt).toBeLessThan(10_000);
    expect(await slow.answer).toHaveProperty('error');
  });

  it('exits 4 with one line when Redis cannot be reached, as every command does', async () => {
    const run = await runCli(['serve'], { ...env, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/cannot reach Redis at 127\.0\.0\.1:1/);
  });

  it('names the cluster setting when the cluster is what cannot be reached', async () => {
    const run = await runCli(['serve'], { ...env, REDIS_CLUSTER_NODES: '127.0.0.1:1', QUEUE_PREFIX: '{serve-cluster}' });
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('set REDIS_CLUSTER_NODES to where they run');
    expect(run.stderr).not.toContain('REDIS_URL');
  });

  it('refuses to start with a bad API_TOKENS (exit 2, naming the variable, never the token)', async () => {
    const badScope = await runCli(['serve'], { ...env, API_TOKENS: 'some-token:write' });
    expect(badScope.code).toBe(2);
    expect(badScope.stderr).toMatch(/API_TOKENS: entry 1: unknown scope "write"/);
    expect(badScope.stderr).not.toContain('some-token');
  });
});
