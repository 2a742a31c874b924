/**
 * `dialer import` as people run it (bin/dialer.mjs, the built command) on a 10,000-row and a 100,000-row CSV, side by
 * side: wall time, CPU time (which the machine's load does not stretch) and peak RSS of each process. Goals (issue
 * 13): 100,000 rows in at most 5 s, and a peak RSS within 1.2× of the 10,000-row run's (the import streams: memory
 * must not grow with the file). Each run imports into a QUEUE_PREFIX of its own, deleted afterwards. Redis:
 * REDIS_URL, else 127.0.0.1:6379 (Redis' own CPU is not counted).
 *
 *   npm run bench:import
 *   BENCH_ROWS=10000,50000,100000 BENCH_RUNS=3 npm run bench:import
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { BIN, ensureBuilt, measure, type Run } from './cliProcess.js';

const ROWS = (process.env.BENCH_ROWS ?? '10000,100000').split(',').map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 1);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Issue 13: 100,000 rows in ≤ 5 s, peak RSS ≤ 1.2 × the 10,000-row run's. */
const GOAL_SECONDS_100K = 5;
const GOAL_RSS_RATIO = 1.2;
const SCAN_COUNT = 5000;

/** A CSV like a CRM export: distinct US numbers, a name and an account column (metadata). */
async function writeCsv(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  out.write('phone_number,first_name,account\n');
  for (let i = 0; i < rows; i++) {
    if (!out.write(`+1415${5_000_000 + i},Name${i % 100},acct-${i}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', SCAN_COUNT);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function importOnce(redis: Redis, file: string, rows: number, run: number): Promise<Run> {
  const prefix = `bench-import-${process.pid}-${rows}-${run}`;
  try {
    const result = await measure([BIN, 'import', file, '--campaign', 'bench'], { REDIS_URL, QUEUE_PREFIX: prefix });
    if (result.code !== 0 || !result.stdout.includes(`enqueued: ${rows}\n`)) {
      throw new Error(`import of ${rows} rows exited ${result.code}:\n${result.stdout}`);
    }
    return result;
  } finally {
    await deletePrefix(redis, prefix);
  }
}

const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const dir = await mkdtemp(join(tmpdir(), 'dialer-import-bench-'));
try {
  await redis.ping();
  ensureBuilt();
  console.log(`dialer import, ${RUNS} run(s) per size (median), Redis ${REDIS_URL}, load average ${load()}`);
  const results = new Map<number, { seconds: number; rssMb: number; cpuSeconds: number }>();
  for (const rows of ROWS) {
    const file = join(dir, `${rows}.csv`);
    await writeCsv(file, rows);
    const runs: Run[] = [];
    for (let run = 0; run < RUNS; run++) runs.push(await importOnce(redis, file, rows, run));
    const result = { seconds: median(runs.map((r) => r.seconds)), rssMb: median(runs.map((r) => r.rssMb)), cpuSeconds: median(runs.map((r) => r.cpuSeconds)) };
    results.set(rows, result);
    console.log(
      `${rows.toLocaleString('en').padStart(8)} rows: ${result.seconds.toFixed(2)} s (${Math.round(rows / result.seconds).toLocaleString('en')} rows/s), ` +
        `CPU ${result.cpuSeconds.toFixed(2)} s, peak RSS ${result.rssMb.toFixed(0)} MB   (runs: ${runs.map((r) => r.seconds.toFixed(2)).join(' ')})`,
    );
  }
  const small = results.get(10_000);
  const big = results.get(100_000);
  if (small && big) {
    const ratio = big.rssMb / small.rssMb;
    const ok = big.seconds <= GOAL_SECONDS_100K && ratio <= GOAL_RSS_RATIO;
    console.log(
      `100,000 vs 10,000 rows: ${big.seconds.toFixed(2)} s (goal ≤ ${GOAL_SECONDS_100K} s), peak RSS ${big.rssMb.toFixed(0)} / ${small.rssMb.toFixed(0)} MB = ` +
        `${ratio.toFixed(2)}× (goal ≤ ${GOAL_RSS_RATIO}×): ${ok ? 'met' : 'NOT met'}; load average ${load()}`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
  await redis.quit();
}
