import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The installed command (`dialer`, package.json bin): the build in dist/ while it is current (`npm ci` and `npm test`
 * make it), else the TypeScript in src/ through tsx. Either way the CLI runs in this one process, so signals reach it.
 * The build starts in about a quarter of tsx's CPU time (0.17 s against 0.72 s), which the suite's ~60 command
 * processes feel on 2 cores.
 */
const BIN = fileURLToPath(new URL('../../bin/dialer.mjs', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `env` without the dialer's own settings, so a test's settings are the only ones a command sees. */
function cleanEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^(LIVEKIT_|SIP_|DIAL_|AGENT_|QUEUE_PREFIX|REDIS_URL)/.test(k)));
}

/** Starts the real CLI, as the installed `dialer` command (BIN), with `env` on top of a clean environment. */
export function startCli(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<CliRun>; output: () => CliRun } {
  const clean = cleanEnvironment(process.env);
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...clean, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, output: () => ({ code: child.exitCode, stdout, stderr }) };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  return startCli(args, env).done;
}

/** process.exit called by a command run in-process: carries the code out instead of ending the test process. */
class ProcessExit extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

/** Commands run in-process one at a time: each swaps the process' environment, output and exit for its own. */
let inProcessQueue: Promise<unknown> = Promise.resolve();

/**
 * Runs a one-shot command (dnc, pause, cancel, report, enqueue …) in this process, through the same command line as
 * the `dialer` process (src/cli/program.ts runCommandLine), with `env` on top of a clean environment as runCli does:
 * for tests about a command's logic, without starting a process (about 1.5 s each on a loaded machine). stdout and
 * stderr are what the command writes through process.stdout/stderr (the pino logger writes to fd 2 directly: its lines
 * are not captured). Not for commands that run until a signal (consumer, serve, agent, demo, report --watch).
 */
export function runCliInProcess(args: string[], env: Record<string, string>): Promise<CliRun> {
  const run = inProcessQueue.then(() => runSwapped(args, env));
  inProcessQueue = run.catch(() => undefined);
  return run;
}

async function runSwapped(args: string[], env: Record<string, string>): Promise<CliRun> {
  const { runCommandLine } = await import('../../src/cli/program.js');
  const saved = { env: process.env, exitCode: process.exitCode, exit: process.exit, out: process.stdout.write, err: process.stderr.write };
  let stdout = '';
  let stderr = '';
  const capture = (append: (text: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      const callback = rest.find((r): r is () => void => typeof r === 'function');
      callback?.();
      return true;
    }) as typeof process.stdout.write;
  process.env = { ...cleanEnvironment(saved.env), LOG_LEVEL: 'warn', ...env };
  process.exitCode = undefined;
  let exited: number | undefined;
  process.exit = ((code?: number | string | null) => {
    exited ??= Number(code ?? process.exitCode ?? 0);
    throw new ProcessExit(exited);
  }) as typeof process.exit;
  process.stdout.write = capture((text) => (stdout += text));
  process.stderr.write = capture((text) => (stderr += text));
  try {
    const end = await runCommandLine(['node', 'dialer', ...args]);
    // a command that called process.exit (exitWithError in `action`) ended there: what unwound after is not its output
    if (exited !== undefined) return { code: exited, stdout, stderr };
    if (end.errorLine !== undefined) stderr += `${end.errorLine}\n`;
    return { code: end.exitNow ? end.code : Number(process.exitCode ?? 0), stdout, stderr };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.exit = saved.exit;
    process.exitCode = saved.exitCode;
    process.env = saved.env;
  }
}
