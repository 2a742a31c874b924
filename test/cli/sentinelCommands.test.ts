/**
 * The one-shot commands through Redis Sentinel, as the installed `dialer` command in a process of its own: each prints
 * its answer and exits 0 at once. A fresh tester found every one (enqueue, campaigns, report, `import … | head -2`)
 * still running minutes after its answer: ioredis' failover detector kept one socket per sentinel open after quit()
 * (fixed in 3906eb1), and the release of those sockets then kept the process alive 2 s more on an ioredis timer
 * (SENTINEL_DISCONNECT_TIMEOUT_MS). Also: sentinels that monitor no primary of the configured name are a bad
 * REDIS_SENTINEL_NAME (exit 2, naming it), not an unreachable Redis.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, hasRedisServer, startSentinelTopology, type SentinelTopology } from '../helpers/redisTopology.js';
import { startCli, type CliRun } from '../helpers/runCli.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

/** A command's start (tsx when dist/ is stale) and its work on a loaded 2-core machine; a hung one is killed then. */
const COMMAND_LIMIT_MS = 60_000;
/**
 * How soon after its last output a finished command must have exited: closing its connection is one QUIT and the
 * sentinel sockets' FIN. It took 2 s more on ioredis' disconnect timer, and never ended before 3906eb1.
 */
const EXIT_AFTER_OUTPUT_MS = 1500;
const TOPOLOGY_START_MS = 60_000;
const IMPORT_ROWS = 50;

/** A run, and how long the process lived after its last output (or after its reader closed the pipe). */
interface TimedRun extends CliRun {
  exitAfterOutputMs: number;
}

describe.skipIf(!hasRedisServer)('one-shot commands through Redis Sentinel', () => {
  let topology: SentinelTopology;
  let env: Record<string, string> = {};
  let dir = '';

  beforeAll(async () => {
    topology = await startSentinelTopology();
    env = { REDIS_SENTINELS: topology.sentinels, REDIS_SENTINEL_NAME: topology.name, QUEUE_PREFIX: uniquePrefix('sentinel-cli') };
    dir = mkdtempSync(join(tmpdir(), 'dialer-sentinel-cli-'));
  }, TOPOLOGY_START_MS);

  afterAll(async () => {
    await topology?.close(); // its own Redis: the keys go with it
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Runs `dialer <args>` with the topology's settings; with `closeAfterFirstOutput` its stdout is closed once output
   * arrives, as `| head` does. A process still running after COMMAND_LIMIT_MS is killed (code null).
   */
  async function timed(args: string[], options: { closeAfterFirstOutput?: boolean; env?: Record<string, string> } = {}): Promise<TimedRun> {
    const cli = startCli(args, { ...env, ...options.env });
    let lastOutputAt = Date.now();
    cli.child.stdout?.on('data', () => (lastOutputAt = Date.now()));
    cli.child.stderr?.on('data', () => (lastOutputAt = Date.now()));
    const killer = setTimeout(() => cli.child.kill('SIGKILL'), COMMAND_LIMIT_MS);
    try {
      if (options.closeAfterFirstOutput) {
        await waitFor(() => (cli.output().stdout.length > 0 || cli.child.exitCode !== null ? true : undefined), COMMAND_LIMIT_MS, `output of ${args.join(' ')}`);
        cli.child.stdout?.destroy();
        lastOutputAt = Date.now();
      }
      const run = await cli.done;
      return { ...run, exitAfterOutputMs: Date.now() - lastOutputAt };
    } finally {
      clearTimeout(killer);
    }
  }

  it('enqueue, campaigns, report, call and a piped import each print their answer and exit 0 at once', { timeout: 6 * COMMAND_LIMIT_MS }, async () => {
    const enqueue = await timed(['enqueue', '+14155550126', '--campaign', 'sn-cli']);
    expect(enqueue, enqueue.stderr).toMatchObject({ code: 0 });
    const callId = enqueue.stdout.trim();
    expect(callId).toMatch(/^c-/);

    const campaigns = await timed(['campaigns']);
    expect(campaigns, campaigns.stderr).toMatchObject({ code: 0 });
    expect(campaigns.stdout).toMatch(/sn-cli\s+1\s+1\s+0/);

    const report = await timed(['report', '--campaign', 'sn-cli']);
    expect(report, report.stderr).toMatchObject({ code: 0 });
    expect(report.stdout).toContain('+14155550126');

    const call = await timed(['call', callId]);
    expect(call, call.stderr).toMatchObject({ code: 0 });
    expect(call.stdout).toContain(`call ${callId}`);

    const csv = join(dir, 'calls.csv');
    const rows = Array.from({ length: IMPORT_ROWS }, (_, i) => `+1415555${String(1000 + i)}`);
    writeFileSync(csv, ['phone_number', ...rows, ''].join('\n'));
    const piped = await timed(['import', csv, '--campaign', 'sn-import'], { closeAfterFirstOutput: true });
    expect(piped, piped.stderr).toMatchObject({ code: 0 });

    for (const [name, run] of Object.entries({ enqueue, campaigns, report, call, piped })) {
      expect(run.exitAfterOutputMs, `${name} exited ${run.exitAfterOutputMs} ms after its output`).toBeLessThan(EXIT_AFTER_OUTPUT_MS);
    }
  });

  it('with one listed sentinel down a command answers, and nothing but its own lines reach stderr (no raw ioredis error)', { timeout: 2 * COMMAND_LIMIT_MS }, async () => {
    const down = await freePort(); // nothing listens there
    const run = await timed(['campaigns'], { env: { REDIS_SENTINELS: `${topology.sentinels},127.0.0.1:${down}` } });
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).not.toBe(''); // its answer (the list, or that there is none yet)
    expect(run.stderr).not.toContain('[ioredis]');
    expect(run.stderr).not.toContain('Unhandled error event');
  });

  it('a primary name the sentinels do not monitor is a bad REDIS_SENTINEL_NAME (exit 2), default mymaster named', { timeout: 2 * COMMAND_LIMIT_MS }, async () => {
    const wrong = await timed(['enqueue', '+14155550127', '--campaign', 'sn-cli'], { env: { REDIS_SENTINEL_NAME: 'no-such-primary' } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toBe(
      `dialer: REDIS_SENTINEL_NAME: the sentinels at ${topology.sentinels} monitor no primary of that name ("mymaster" when unset): ` +
        'set it to the name in their "sentinel monitor <name> …" line (got "no-such-primary")\n',
    );
    const unset = await timed(['campaigns'], { env: { REDIS_SENTINEL_NAME: '' } });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/^dialer: REDIS_SENTINEL_NAME: .*\(got "mymaster"\)\n$/);
  });
});
