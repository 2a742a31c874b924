import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './waitFor.js';

/** The crash tests' consumer process: one dial worker, `ready` once it works, `active <job id>` per job taken. */
const FIXTURE = fileURLToPath(new URL('../fixtures/dialWorkerProcess.mjs', import.meta.url));

/** A consumer process and what it has printed so far. */
export interface ConsumerProcess {
  child: ChildProcess;
  output(): string;
}

/**
 * Starts a consumer in its own process (node itself, so a SIGKILL reaches the consumer and not a wrapper), with `env`
 * on top of this process' environment, and resolves once it is ready. It is killed (SIGKILL) when it is not ready
 * within `readyWithinMs`, so a failed start leaves nothing running.
 */
export async function startConsumerProcess(env: Record<string, string>, readyWithinMs: number): Promise<ConsumerProcess> {
  const child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  try {
    await waitFor(() => (output.includes('ready') ? true : undefined), readyWithinMs, 'consumer process ready');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, output: () => output };
}
