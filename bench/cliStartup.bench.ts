/**
 * Start-up of the `dialer` command (bin/dialer.mjs) as people run it: wall time and peak RSS of `dialer --help` and
 * of `dialer enqueue <number>` (a real enqueue into Redis, under a prefix of its own that is deleted afterwards),
 * each run RUNS times, median reported. It builds dist/ first when src/ is newer, so it measures the installed path;
 * `node -e 0` is measured alongside as this machine's floor, and one run from source (tsx) for comparison.
 *
 *   npm run bench:cli            # REDIS_URL, else 127.0.0.1:6379
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = `${ROOT}bin/dialer.mjs`;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `bench-cli-${process.pid}`;
/** Goals from the issue: --help under 0.3 s, enqueue under 0.8 s, both under 100 MB. */
const GOALS = { help: 0.3, enqueue: 0.8, rssMb: 100 };
/** Written to stderr by the preload below when the measured process exits: its peak RSS in kB. */
const RSS_MARK = '__dialer_bench_max_rss_kb=';
const RSS_PRELOAD = `data:text/javascript,process.on('exit',()=>process.stderr.write('${RSS_MARK}'+process.resourceUsage().maxRSS+'\\n'))`;

interface Run {
  seconds: number;
  rssMb: number;
  code: number | null;
}

function newest(dir: string): number {
  let max = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) max = Math.max(max, statSync(`${e.parentPath}/${e.name}`).mtimeMs);
  }
  return max;
}

/** Builds dist/ when it is missing or older than src/ (what bin/dialer.mjs checks before using it). */
function ensureBuilt(): void {
  const stamp = `${ROOT}dist/.build-stamp`;
  if (existsSync(stamp) && newest(`${ROOT}src`) <= statSync(stamp).mtimeMs) return;
  const built = spawnSync(process.execPath, [`${ROOT}scripts/build.mjs`], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('build failed');
}

function measure(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', RSS_PRELOAD, ...args], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL, QUEUE_PREFIX: PREFIX, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      const kb = Number(new RegExp(`${RSS_MARK}(\\d+)`).exec(stderr)?.[1] ?? Number.NaN);
      if (code !== 0) process.stderr.write(stderr.replace(new RegExp(`${RSS_MARK}\\d+\\n`), ''));
      resolve({ seconds, rssMb: kb / 1024, code });
    });
  });
}

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
