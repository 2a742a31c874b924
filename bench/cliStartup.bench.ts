/**
 * Start-up of the `dialer` command (bin/dialer.mjs) as people run it: wall time and peak RSS of `dialer --help` and
 * of `dialer enqueue <number>` (a real enqueue into Redis, under a prefix of its own that is deleted afterwards),
 * each run RUNS times, median reported. It builds dist/ first when src/ is newer, so it measures the installed path
 * (the bundled command line, dist/cli-bundle/); `node -e 0` is measured alongside as this machine's floor, the
 * unbundled build (dist/cli/main.js) side by side, and one run from source (tsx) for comparison.
 *
 *   npm run bench:cli            # REDIS_URL, else 127.0.0.1:6379
 */
import { Redis } from 'ioredis';
import { BIN, ROOT, ensureBuilt, measure as measureNode, type Run } from './cliProcess.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `bench-cli-${process.pid}`;
/** Goals from the issue: --help under 0.3 s, enqueue under 0.8 s, both under 100 MB. */
const GOALS = { help: 0.3, enqueue: 0.8, rssMb: 100 };

const measure = (args: string[], env: Record<string, string> = {}): Promise<Run> => measureNode(args, { REDIS_URL, QUEUE_PREFIX: PREFIX, ...env });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

async function series(name: string, args: () => string[], env: Record<string, string> = {}): Promise<{ seconds: number; rssMb: number }> {
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    ensureBuilt();
    const run = await measure(args(), env);
    if (run.code !== 0) throw new Error(`${name} exited ${run.code}`);
    runs.push(run);
  }
  const result = { seconds: median(runs.map((r) => r.seconds)), rssMb: median(runs.map((r) => r.rssMb)) };
  const all = runs.map((r) => r.seconds.toFixed(2)).join(' ');
  console.log(`${name.padEnd(28)} median ${result.seconds.toFixed(3)} s, RSS ${result.rssMb.toFixed(0)} MB   (runs: ${all})`);
  return result;
}

let n = 0;
const number = () => `+1415777${String(1000 + (n++ % 9000)).padStart(4, '0')}`;

const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
try {
  await redis.ping();
  console.log(`dialer start-up, ${RUNS} runs each (median), load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  await series('node -e 0 (floor)', () => ['-e', '0']);
  const help = await series('dialer --help', () => [BIN, '--help']);
  const enqueue = await series('dialer enqueue', () => [BIN, 'enqueue', number(), '--campaign', 'bench']);
  // the same build without the bundle (dist/cli/main.js: hundreds of modules resolved and compiled at start)
  const unbundled = await series('enqueue, unbundled build', () => [`${ROOT}dist/cli/main.js`, 'enqueue', number(), '--campaign', 'bench']);
  console.log(`${'bundle / unbundled'.padEnd(28)} ${(enqueue.seconds / unbundled.seconds).toFixed(2)} of the time, ${(enqueue.rssMb / unbundled.rssMb).toFixed(2)} of the RSS`);
  const fromSource = await measure([BIN, 'enqueue', number(), '--campaign', 'bench'], { DIALER_FROM_SOURCE: '1' });
  console.log(`${'dialer enqueue (tsx, 1 run)'.padEnd(28)} ${fromSource.seconds.toFixed(3)} s, RSS ${fromSource.rssMb.toFixed(0)} MB`);
  const ok = help.seconds < GOALS.help && enqueue.seconds < GOALS.enqueue && Math.max(help.rssMb, enqueue.rssMb) < GOALS.rssMb;
  console.log(`goals: --help < ${GOALS.help} s, enqueue < ${GOALS.enqueue} s, RSS < ${GOALS.rssMb} MB: ${ok ? 'met' : 'NOT met'}`);
} finally {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  await redis.quit();
}
