import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { SECOND } from '../../src/core/time.js';

/** How long a process gets to end after SIGTERM before it is sent SIGKILL. */
export const STOP_GRACE_MS = 5 * SECOND;

/** A program the harness started: its PID, its log file, and a way to end it by that PID. */
export interface ManagedProcess {
  name: string;
  pid: number;
  logFile: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Thrown when a program the harness needs could not be started or ended before it was ready. */
export class ProcessStartError extends Error {
  override readonly name = 'ProcessStartError';
}

/**
 * Starts `command` with stdout and stderr appended to `logFile`. The child is not detached: it is ended by its own
 * PID through `stop`, never by name.
 */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): ManagedProcess {
  const fd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['ignore', fd, fd], env: options.env ?? process.env, cwd: options.cwd });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const pid = child.pid;
  if (pid === undefined) throw new ProcessStartError(`${name}: could not start ${command}`);
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = STOP_GRACE_MS): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };
  return { name, pid, logFile: options.logFile, child, exited, stop };
}

/**
 * Polls `probe` every `intervalMs` until it returns true, `timeoutMs` passes, or `proc` exits; throws a
 * ProcessStartError naming the log file otherwise.
 */
export async function waitUntilReady(
  proc: ManagedProcess,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<number> {
  const started = performance.now();
  let ended = false;
  void proc.exited.then(() => (ended = true));
  while (performance.now() - started < timeoutMs) {
    if (ended) throw new ProcessStartError(`${proc.name} exited before it was ready; see ${proc.logFile}`);
    if (await probe().catch(() => false)) return performance.now() - started;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new ProcessStartError(`${proc.name} was not ready after ${timeoutMs} ms; see ${proc.logFile}`);
}
