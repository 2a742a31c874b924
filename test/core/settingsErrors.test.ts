/**
 * A bad setting is one line: `<VAR>: <what is wrong> (got "<value>")`, the variable named once, the value shown unless
 * it is a secret (a credential's value never; a URL's password masked). Several bad settings give one line each. The
 * command line prints each as its own `dialer: …` line and exits 2.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadAgentSettings } from '../../src/agent/agentConfig.js';
import { parseApiTokens } from '../../src/api/tokens.js';
import { redisUnavailable } from '../../src/cli/cliContext.js';
import { EXIT_INVALID_INPUT, EXIT_UNAVAILABLE, errorLine, exitCodeFor } from '../../src/cli/exitCodes.js';
import { loadConfig } from '../../src/core/config.js';
import { ConfigError } from '../../src/core/errors.js';
import type { RedisTarget } from '../../src/core/redisTarget.js';
import { runCliInProcess } from '../helpers/runCli.js';

/** The lines a settings error prints. */
function problems(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  throw new Error('the settings were accepted');
}

describe('a bad setting', () => {
  it.each([
    [{ DIAL_CPS: '0' }, 'DIAL_CPS: must be > 0 (got "0")'],
    [{ DIAL_CPS: 'fast' }, 'DIAL_CPS: must be a number (got "fast")'],
    [{ DIAL_CONCURRENCY: '1.5' }, 'DIAL_CONCURRENCY: must be a whole number (got "1.5")'],
    [{ METRICS_PORT: 'abc' }, 'METRICS_PORT: must be a port number (got "abc")'],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL: .+ \(got "loud"\)$/],
    [{ DIAL_TIME_ZONE: 'Mars/Base' }, 'DIAL_TIME_ZONE: must be an IANA time zone such as America/New_York (got "Mars/Base")'],
    [{ DIAL_CALL_WINDOW: 'business hours' }, 'DIAL_CALL_WINDOW: call window must look like 09:00-20:00 (got "business hours")'],
    [{ DIAL_CALL_DAYS: 'mon-fri' }, 'DIAL_CALL_DAYS: needs DIAL_CALL_WINDOW (the hours, e.g. 09:00-20:00) (got "mon-fri")'],
    [{ DIAL_MAX_ACTIVE_CALLS: '2', DIAL_RESERVED_INBOUND: '2' }, 'DIAL_RESERVED_INBOUND: must be below DIAL_MAX_ACTIVE_CALLS (2), or no outbound call could ever be dialed (got "2")'],
    [{ REDIS_SENTINELS: '127.0.0.1:26379, nohost:port' }, /^REDIS_SENTINELS: "nohost:port" is not host:port/],
    [{ REDIS_CLUSTER_NODES: '127.0.0.1:7000' }, /^QUEUE_PREFIX: on Redis Cluster it must carry a non-empty hash tag such as \{bull\}, .* \(got "bull"\)$/],
  ])('%o is one line naming the variable once, with the value', (env, line) => {
    const lines = problems(() => loadConfig(env));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(typeof line === 'string' ? new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : line);
    const name = (lines[0] ?? '').split(':')[0] ?? '';
    expect((lines[0] ?? '').split(name).length - 1, 'the name appears once').toBe(1);
  });

  it('never shows a secret, and masks the password in a URL', () => {
    expect(problems(() => parseApiTokens('secret-token-value:write'))).toEqual(['API_TOKENS: entry 1: unknown scope "write" (scopes: enqueue, read, admin; join them with +)']);
    const url = problems(() => loadConfig({ REDIS_URL: 'redis://:hunter2@redis host:6379' }));
    expect(url).toEqual(['REDIS_URL: must be a URL like redis://host:6379 (got "redis://:***@redis host:6379")']);
  });

  it('several bad settings give one line each, the agent settings too', () => {
    expect(problems(() => loadConfig({ DIAL_CPS: '0', DIAL_CONCURRENCY: '-1.5', REDIS_URL: 'nope' }))).toEqual([
      'REDIS_URL: must be a URL like redis://host:6379 (got "nope")',
      'DIAL_CPS: must be > 0 (got "0")',
      'DIAL_CONCURRENCY: must be a whole number (got "-1.5")',
    ]);
    expect(problems(() => loadAgentSettings({ AGENT_SILENCE_TIMEOUT_S: '0', AGENT_MODEL_MODE: 'chat' }))).toEqual([
      'AGENT_MODEL_MODE: must be "realtime" or "pipeline" (got "chat")',
      'AGENT_SILENCE_TIMEOUT_S: must be > 0 (got "0")',
    ]);
  });

  it('is printed by the command line as one `dialer:` line per setting, exit 2', async () => {
    const run = await runCliInProcess(['campaigns'], { DIAL_CPS: '0', DIAL_CONCURRENCY: 'x' });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('dialer: DIAL_CPS: must be > 0 (got "0")\ndialer: DIAL_CONCURRENCY: must be a number (got "x")\n');
    expect(errorLine(new ConfigError('A: one\nB: two'))).toBe('dialer: A: one\ndialer: B: two');
  });
});

/** A loopback port nothing listens on (taken from the OS, then let go). */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

describe('Redis out of reach: the line names the setting that says where it runs', () => {
  const sentinelTarget = (name: string): RedisTarget => ({
    kind: 'sentinel',
    url: 'redis://127.0.0.1:6379',
    sentinels: [
      { host: '10.0.0.5', port: 26379 },
      { host: '10.0.0.6', port: 26379 },
    ],
    name,
  });

  it('sentinels that monitor no primary of that name: REDIS_SENTINEL_NAME (default mymaster) is a bad setting, exit 2', () => {
    // ioredis' SentinelConnector error when every sentinel refused the name (what a sentinel answers to SENTINEL SENTINELS)
    const err = new Error('All sentinels are unreachable. Retrying from scratch after 10ms. Last error: ERR No such master with that name');
    const line = errorLine(redisUnavailable(sentinelTarget('mymaster'), err));
    expect(line).toBe(
      'dialer: REDIS_SENTINEL_NAME: the sentinels at 10.0.0.5:26379,10.0.0.6:26379 monitor no primary of that name ("mymaster" when unset): ' +
        'set it to the name in their "sentinel monitor <name> …" line (got "mymaster")',
    );
    expect(exitCodeFor(redisUnavailable(sentinelTarget('nosuch'), err))).toBe(EXIT_INVALID_INPUT);
    expect(errorLine(redisUnavailable(sentinelTarget('nosuch'), err))).toMatch(/\(got "nosuch"\)$/);
  });

  it('no sentinel answering names REDIS_SENTINELS, exit 4', () => {
    const err = new Error('All sentinels are unreachable. Retrying from scratch after 10ms. Last error: Connection is closed.');
    const unavailable = redisUnavailable(sentinelTarget('mymaster'), err);
    expect(exitCodeFor(unavailable)).toBe(EXIT_UNAVAILABLE);
    expect(errorLine(unavailable)).toBe(
      'dialer: cannot reach Redis at Sentinel primary "mymaster" via 10.0.0.5:26379,10.0.0.6:26379 (no sentinel answered; last error: Connection is closed.): ' +
        'start the sentinels there, or set REDIS_SENTINELS to where they run',
    );
  });

  it('a primary the sentinels name that does not answer says so, exit 4', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:6379'), { code: 'ECONNREFUSED' });
    const unavailable = redisUnavailable(sentinelTarget('mymaster'), refused);
    expect(exitCodeFor(unavailable)).toBe(EXIT_UNAVAILABLE);
    expect(errorLine(unavailable)).toMatch(/\(ECONNREFUSED\): the primary the sentinels name does not answer: start it/);
    expect(errorLine(unavailable)).not.toContain('REDIS_URL');
  });

  it('a cluster none of whose seeds answers names REDIS_CLUSTER_NODES, exit 4; one node names REDIS_URL as before', () => {
    const cluster: RedisTarget = { kind: 'cluster', url: 'redis://127.0.0.1:6379', nodes: [{ host: '127.0.0.1', port: 27009 }] };
    const unavailable = redisUnavailable(cluster, new Error('Failed to refresh slots cache.'));
    expect(exitCodeFor(unavailable)).toBe(EXIT_UNAVAILABLE);
    expect(errorLine(unavailable)).toBe(
      "dialer: cannot reach Redis at Redis Cluster via 127.0.0.1:27009 (Failed to refresh slots cache.): start the cluster's nodes there, or set REDIS_CLUSTER_NODES to where they run",
    );
    const node = redisUnavailable('redis://127.0.0.1:27010', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(errorLine(node)).toBe('dialer: cannot reach Redis at 127.0.0.1:27010 (ECONNREFUSED): start Redis there, or set REDIS_URL to where it runs');
  });

  it('is what a command prints for sentinels and cluster seeds nothing listens on (exit 4)', { timeout: 60_000 }, async () => {
    const sentinel = await runCliInProcess(['campaigns'], { REDIS_SENTINELS: `127.0.0.1:${await closedPort()}`, QUEUE_PREFIX: 't-unreachable' });
    expect(sentinel.code).toBe(EXIT_UNAVAILABLE);
    expect(sentinel.stderr).toMatch(/^dialer: cannot reach Redis at Sentinel primary "mymaster" via 127\.0\.0\.1:\d+ \(no sentinel answered.*set REDIS_SENTINELS to where they run\n$/);
    const cluster = await runCliInProcess(['campaigns'], { REDIS_CLUSTER_NODES: `127.0.0.1:${await closedPort()}`, QUEUE_PREFIX: '{t-unreachable}' });
    expect(cluster.code).toBe(EXIT_UNAVAILABLE);
    expect(cluster.stderr).toMatch(/^dialer: cannot reach Redis at Redis Cluster via 127\.0\.0\.1:\d+ \(.*\): .*set REDIS_CLUSTER_NODES to where they run\n$/);
  });
});
