/**
 * Runs the `dialer` command (bin/dialer.mjs) as people do, for the benches: wall time and peak RSS of one process.
 * Shared by bench/cliStartup.bench.ts and bench/import.bench.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = `${ROOT}bin/dialer.mjs`;

/** Written to stderr by the preload below when the measured process exits: its peak RSS in kB, and its CPU time in µs. */
const RSS_MARK = '__dialer_bench_max_rss_kb=';
const CPU_MARK = '__dialer_bench_cpu_us=';
const RSS_PRELOAD =
  `data:text/javascript,process.on('exit',()=>{const u=process.resourceUsage();` +
  `process.stderr.write('${RSS_MARK}'+u.maxRSS+' ${CPU_MARK}'+(u.userCPUTime+u.systemCPUTime)+'\\n')})`;

export interface Run {
  seconds: number;
  rssMb: number;
  /** CPU time of the process (user + system), seconds: what the machine's load does not stretch. */
  cpuSeconds: number;
  code: number | null;
  stdout: string;
}

function newest(dir: string): number {
  let max = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) max = Math.max(max, statSync(`${e.parentPath}/${e.name}`).mtimeMs);
  }
  return max;
}

/** Builds dist/ when it is missing or older than src/ (what bin/dialer.mjs checks before using it). */
export function ensureBuilt(): void {
  const stamp = `${ROOT}dist/.build-stamp`;
  if (existsSync(stamp) && newest(`${ROOT}src`) <= statSync(stamp).mtimeMs) return;
  const built = spawnSync(process.execPath, [`${ROOT}scripts/build.mjs`], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('build failed');
}

/** Runs `node <args>` in the repository with `env` added; resolves with its wall time, peak RSS, exit code and stdout. */
export function measure(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', RSS_PRELOAD, ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      const kb = Number(new RegExp(`${RSS_MARK}(\\d+)`).exec(stderr)?.[1] ?? Number.NaN);
      const cpuUs = Number(new RegExp(`${CPU_MARK}(\\d+)`).exec(stderr)?.[1] ?? Number.NaN);
      if (code !== 0) process.stderr.write(stderr.replace(new RegExp(`${RSS_MARK}\\d+ ${CPU_MARK}\\d+\\n`), ''));
      resolve({ seconds, rssMb: kb / 1024, cpuSeconds: cpuUs / 1e6, code, stdout });
    });
  });
}
