/**
 * HTTP API figures, in one run, against a real `dialer serve` process (tsx, as `npm run dialer -- serve` runs it) on
 * loopback:
 *  1. `POST /v1/campaigns/{id}/calls` with 10,000 rows against `enqueueCalls` with the same rows in this process,
 *     alternating rounds (goal: API ≥ 0.7 × direct, as calls per second).
 *  2. `POST /v1/calls` latency under 200 concurrent clients (autocannon, one connection each) for a few seconds: p50,
 *     p99 and the rate.
 * Redis: REDIS_URL, else 127.0.0.1:6379, else a redis-server started for the run.
 *
 *   npm run bench:api
 *   BENCH_API_ROUNDS=2 BENCH_API_SECONDS=3 BENCH_API_CLIENTS=100 npm run bench:api
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { MAX_BATCH_CALLS } from '../src/api/schemas.js';
import { findOrStartRedis } from '../src/core/localRedis.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../src/core/redisConnection.js';
import { SECOND } from '../src/core/time.js';
import { enqueueCalls, type CallRequest } from '../src/producer/enqueueCalls.js';
import { deleteKeysWithPrefix } from '../test/helpers/testRedis.js';

const ROUNDS = Number(process.env.BENCH_API_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 5);
const CLIENTS = Number(process.env.BENCH_API_CLIENTS ?? 200);
const ROWS = MAX_BATCH_CALLS;
const MAX_ATTEMPTS = 3;
const GOAL = 0.7;
const TOKEN = `bench-${randomUUID()}`;
/** The server must never answer 429 here: this bench measures the API, not its limit. */
const NO_RATE_LIMIT = 1_000_000;
/** The server gets this long to say it listens. */
const START_TIMEOUT_MS = 120 * SECOND;
const WARMUP_SECONDS = 1;

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

/** Distinct US numbers with a key and two metadata fields each, like a CSV import (and the enqueue bench). */
function rows(round: number) {
  return Array.from({ length: ROWS }, (_, i) => ({
    phone_number: `+1415${2_000_000 + i}`,
    key: `row-${round}-${i}`,
    metadata: { first_name: 'Ada', account: `acct-${i}` },
  }));
}

const asRequests = (batch: ReturnType<typeof rows>, campaignId: string): CallRequest[] =>
  batch.map((r) => ({ phoneNumber: r.phone_number, key: r.key, metadata: r.metadata, campaignId }));

/** `dialer serve` on a free port; resolves with its URL once it logs that it listens. */
async function startServer(redisUrl: string, prefix: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], {
    env: { ...process.env, REDIS_URL: redisUrl, QUEUE_PREFIX: prefix, API_PORT: '0', API_HOST: '127.0.0.1', API_TOKENS: TOKEN, API_RATE_LIMIT: String(NO_RATE_LIMIT), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within ${START_TIMEOUT_MS} ms:\n${stderr}`)), START_TIMEOUT_MS);
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      const line = stderr.split('\n').find((l) => l.includes('API listening'));
      if (!line) return;
      clearTimeout(timer);
      const { url } = JSON.parse(line) as { url: string };
      resolve({ url, child });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}:\n${stderr}`));
    });
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function viaApi(url: string, campaignId: string, body: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${url}/v1/campaigns/${campaignId}/calls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body,
  });
  const answer = (await response.json()) as { enqueued?: number; rejected?: number };
  const ms = performance.now() - started;
  if (response.status !== 200 || answer.enqueued !== ROWS) throw new Error(`API answered ${response.status}: enqueued ${answer.enqueued}, rejected ${answer.rejected}`);
  return ms;
}

async function direct(redisUrl: string, prefix: string, requests: CallRequest[]): Promise<number> {
  const connection = createProducerConnection(redisUrl);
  try {
    await waitUntilReady(connection);
    const started = performance.now();
    const summary = await enqueueCalls(requests, { connection, prefix, maxAttempts: MAX_ATTEMPTS });
    const ms = performance.now() - started;
    if (summary.enqueued.length !== ROWS) throw new Error(`enqueueCalls enqueued ${summary.enqueued.length}`);
    return ms;
  } finally {
    await closeConnection(connection);
  }
}

/** Runs autocannon against POST /v1/calls, each request a new number (so a new call). */
function load(url: string, connections: number, seconds: number): Promise<autocannon.Result> {
  let n = 0;
  return autocannon({
    url: `${url}/v1/calls`,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => ({
          ...request,
          body: JSON.stringify({ phone_number: `+1628${3_000_000 + (n++ % 6_000_000)}`, campaign_id: 'bench-p99', metadata: { first_name: 'Ada' } }),
        }),
      },
    ],
  });
}

const rate = (calls: number, ms: number) => Math.round((calls / ms) * 1000);

async function main(): Promise<void> {
  const redis = await findOrStartRedis();
  const apiPrefix = `bench-api-${randomUUID().slice(0, 8)}`;
  const directPrefix = `bench-direct-${randomUUID().slice(0, 8)}`;
  const server = await startServer(redis.url, apiPrefix);
  try {
    console.log(`api bench: Redis ${redis.url} (${redis.source}); dialer serve at ${server.url}`);
    console.log(`1. ${ROWS.toLocaleString('en')} rows: POST /v1/campaigns/{id}/calls vs enqueueCalls in this process, ${ROUNDS} rounds`);
    // warm-up: JIT and Lua script loading on both sides
    await viaApi(server.url, 'warm', JSON.stringify({ calls: rows(-1).slice(0, ROWS) }));
    await direct(redis.url, directPrefix, asRequests(rows(-1), 'warm'));
    let apiTotal = 0;
    let directTotal = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const batch = rows(round);
      const body = JSON.stringify({ calls: batch });
      await deleteKeysWithPrefix(redis.url, apiPrefix);
      await deleteKeysWithPrefix(redis.url, directPrefix);
      const order = round % 2 === 1 ? (['api', 'direct'] as const) : (['direct', 'api'] as const);
      const t: Partial<Record<'api' | 'direct', number>> = {};
      for (const which of order) {
        t[which] = which === 'api' ? await viaApi(server.url, `r${round}`, body) : await direct(redis.url, directPrefix, asRequests(batch, `r${round}`));
      }
      const api = t.api ?? Number.NaN;
      const dir = t.direct ?? Number.NaN;
      apiTotal += api;
      directTotal += dir;
      console.log(
        `  round ${round}: API ${rate(ROWS, api).toLocaleString('en')} calls/s (${Math.round(api)} ms)   ` +
          `enqueueCalls ${rate(ROWS, dir).toLocaleString('en')} calls/s (${Math.round(dir)} ms)   ratio ${(dir / api).toFixed(2)}`,
      );
    }
    const ratio = directTotal / apiTotal;
    console.log(
      `  overall: API ${rate(ROWS * ROUNDS, apiTotal).toLocaleString('en')} calls/s, enqueueCalls ${rate(ROWS * ROUNDS, directTotal).toLocaleString('en')} calls/s, ` +
        `API/direct = ${ratio.toFixed(2)} (goal ≥ ${GOAL}) ${ratio >= GOAL ? 'OK' : 'BELOW GOAL'}`,
    );

    await deleteKeysWithPrefix(redis.url, apiPrefix);
    console.log(`2. POST /v1/calls, ${CLIENTS} concurrent clients for ${SECONDS} s (after ${WARMUP_SECONDS} s of warm-up)`);
    await load(server.url, Math.min(CLIENTS, 20), WARMUP_SECONDS);
    const result = await load(server.url, CLIENTS, SECONDS);
    const l = result.latency;
    console.log(
      `  ${result['2xx'].toLocaleString('en')} calls enqueued (${Math.round(result.requests.average).toLocaleString('en')} req/s), ` +
        `non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}; ` +
        `latency p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, max ${l.max} ms`,
    );
  } finally {
    await stopServer(server.child);
    await deleteKeysWithPrefix(redis.url, apiPrefix);
    await deleteKeysWithPrefix(redis.url, directPrefix);
    await redis.stop();
  }
}

await main();
