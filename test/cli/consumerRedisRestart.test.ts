/**
 * `dialer consumer` through a Redis restart, run as an operator runs it (`npm run --silent dialer -- consumer`):
 * every line it writes to stderr is pino JSON, the outage is logged once per connection rather than once per
 * reconnect attempt, and the consumer still dials and drains afterwards. Its /metrics listens on loopback.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type ProvidedRedis } from '../../src/core/localRedis.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { SECOND } from '../../src/core/time.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** Long enough for several of ioredis' reconnect attempts (50 ms growing by 50 ms each) to fail. */
const REDIS_DOWN_MS = 3 * SECOND;
/** More warnings than this for one outage means one per reconnect attempt (or per BullMQ object), not one per connection. */
const MAX_OUTAGE_LINES = 20;
const PINO_WARN = 40;

let redis: ProvidedRedis | undefined;
let sim: LiveKitSim;

beforeAll(async () => {
  redis = await startRedisServer();
  sim = await startLiveKitSim();
});

afterAll(async () => {
  await redis?.stop();
  await sim.close();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no free port');
  return address.port;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** The consumer's pid, from the pino line that says it started. */
function consumerPidOf(stderr: string): number {
  const started = stderr.split('\n').find((line) => line.includes('consumer started'));
  const pid = started ? (JSON.parse(started) as { pid?: unknown }).pid : undefined;
  if (typeof pid !== 'number') throw new Error('the consumer logged no pid');
  return pid;
}

function parseLines(stderr: string): { json: Record<string, unknown>[]; other: string[] } {
  const json: Record<string, unknown>[] = [];
  const other: string[] = [];
  for (const line of stderr.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json.push(parsed as Record<string, unknown>);
      else other.push(line);
    } catch {
      other.push(line);
    }
  }
  return { json, other };
}

describe('dialer consumer during a Redis restart', () => {
  it('writes only pino JSON lines to stderr, logs the outage once per connection, and recovers', async () => {
    const first = redis;
    if (!first) throw new Error('no redis-server');
    const url = first.url;
    const prefix = uniquePrefix('redis-restart');
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(LIVEKIT_|SIP_|DIAL_|AGENT_|QUEUE_PREFIX|REDIS_URL|METRICS_)/.test(k))),
      REDIS_URL: url,
      QUEUE_PREFIX: prefix,
      LIVEKIT_URL: sim.url,
      LIVEKIT_API_KEY: sim.apiKey,
      LIVEKIT_API_SECRET: sim.apiSecret,
      SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
      DIAL_CPS: '20',
      DIAL_RINGING_TIMEOUT_S: '2',
      DIAL_LOCK_DURATION_MS: '2000',
      LOG_LEVEL: 'info',
      METRICS_PORT: String(await freePort()),
    };
    // its own process group, so that whatever happens the test can end npm, sh, tsx and the consumer together
    const child = spawn('npm', ['run', '--silent', 'dialer', '--', 'consumer'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const connection = new Redis(url, { maxRetriesPerRequest: null });
    connection.on('error', () => undefined); // this test's own connection rides out the restart it causes
    try {
      await waitFor(() => (stderr.includes('consumer started') ? true : undefined), 30_000, 'consumer started');
      // npm runs the script through `sh -c`, which does not pass signals on: SIGTERM goes to the consumer itself,
      // whose pid every log line carries
      const consumerPid = consumerPidOf(stderr);
      // /metrics has no authentication: loopback only unless METRICS_HOST widens it
      const served = parseLines(stderr).json.find((line) => line.msg === 'metrics served on /metrics');
      expect(served).toMatchObject({ host: '127.0.0.1', port: Number(env.METRICS_PORT) });
      expect((await fetch(`http://127.0.0.1:${env.METRICS_PORT}/metrics`)).status).toBe(200);

      await first.stop();
      await new Promise((resolve) => setTimeout(resolve, REDIS_DOWN_MS));
      redis = await startRedisServer({ port: portOf(url) });

      // The restarted Redis is empty: a call enqueued now must still be dialed by the same consumer.
      await waitFor(async () => ((await connection.ping().catch(() => undefined)) === 'PONG' ? true : undefined), 10_000, 'redis back');
      const producer = new CallProducer({ connection, prefix, maxAttempts: 1 });
      sim.network.setBehavior('+14155557101', { type: 'busy' });
      await producer.enqueueCall({ phoneNumber: '+14155557101', campaignId: 'restart' });
      await waitFor(() => (sim.calls.some((c) => c.phoneNumber === '+14155557101') ? true : undefined), 30_000, 'dialed after restart');

      process.kill(consumerPid, 'SIGTERM');
      expect(await exited).toBe(0);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the consumer's stderr:\n${stderr.slice(-4000)}`);
    } finally {
      if (child.exitCode === null && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      await connection.quit().catch(() => connection.disconnect());
    }

    const { json, other } = parseLines(stderr);
    expect(other, `non-JSON stderr lines:\n${other.slice(0, 20).join('\n')}`).toEqual([]);
    const lost = json.filter((line) => line.msg === 'Redis connection lost');
    const restored = json.filter((line) => line.msg === 'Redis connection restored');
    expect(lost.length).toBeGreaterThan(0);
    expect(restored.length).toBeGreaterThan(0);
    // at the level of the loss: with LOG_LEVEL=warn an outage must not look as if it never ended
    expect(restored.every((line) => line.level === PINO_WARN), JSON.stringify(restored.slice(0, 3))).toBe(true);
    const warnings = json.filter((line) => typeof line.level === 'number' && line.level >= PINO_WARN);
    expect(warnings.length, JSON.stringify(warnings.slice(0, 5))).toBeLessThanOrEqual(MAX_OUTAGE_LINES);
    // once per connection and outage: no connection reports the same outage twice
    const lostPerConnection = new Map<string, number>();
    for (const line of lost) {
      const key = String(line.connection);
      lostPerConnection.set(key, (lostPerConnection.get(key) ?? 0) + 1);
    }
    for (const [name, count] of lostPerConnection) expect(count, `${name} reported the outage ${count} times`).toBe(1);
  });
});
