import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/** The installed command (`dialer`, package.json bin): tsx registered in-process, then the CLI. */
const BIN = fileURLToPath(new URL('../../bin/dialer.mjs', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts the real CLI (node with tsx as loader, so signals reach it directly) with `env` on top of a clean
 * environment; `viaBin` starts it as the installed `dialer` command does.
 */
export function startCli(
  args: string[],
  env: Record<string, string>,
  options: { viaBin?: boolean } = {},
): { child: ChildProcess; done: Promise<CliRun>; output: () => CliRun } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(LIVEKIT_|SIP_|DIAL_|AGENT_|QUEUE_PREFIX|REDIS_URL)/.test(k)));
  const entry = options.viaBin ? [BIN] : ['--import', 'tsx', MAIN];
  const child = spawn(process.execPath, [...entry, ...args], {
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
