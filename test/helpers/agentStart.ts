import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * Runs `src/agent/main.ts start` (through tsx) with `env` until it exits, for a test that expects it to refuse to
 * start. A worker that does not refuse registers and runs on: its process group (tsx runs the worker in a child of
 * its own, and the worker forks job processes) is SIGKILLed after `stopAfterMs`, and the exit code is then null.
 */
export async function runAgentStartUntilExit(env: NodeJS.ProcessEnv, stopAfterMs: number): Promise<{ code: number | null; stderr: string }> {
  const require = createRequire(import.meta.url);
  const main = fileURLToPath(new URL('../../src/agent/main.ts', import.meta.url));
  const child = spawn(process.execPath, [require.resolve('tsx/cli'), main, 'start'], { cwd: tmpdir(), env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stop = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), stopAfterMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(stop);
  return { code, stderr };
}
