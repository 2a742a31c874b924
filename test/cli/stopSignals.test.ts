/**
 * One Ctrl-C drains, everywhere. A terminal sends SIGINT to the whole foreground process group, and `npm run` forwards
 * its own copy to its child, so the processes see the same Ctrl-C twice or more. These start the commands as an
 * operator does (`npm run --silent dialer -- …`) in a process group of their own and signal the group once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const prefix = uniquePrefix('stop-signals');
const AGENT_NAME = 'stop-signals-agent';
const REGISTER_TIMEOUT_MS = 120_000;
const DRAIN_TIMEOUT_MS = 45_000;
const TEST_TIMEOUT_MS = 240_000;
/** AGENT_JOB_SHUTDOWN_TIMEOUT_MS for `agent start`: no job runs when it is stopped, so only a warming idle process waits it out. */
const JOB_SHUTDOWN_TIMEOUT_MS = 2000;

interface Started {
  child: ChildProcess;
  output: () => string;
  /** npm's own end: it re-raises the SIGINT its script ended on, so its code says nothing about the drain. */
  done: Promise<void>;
}

/** `npm run --silent dialer -- <args>` as the leader of a new process group (a terminal's foreground job). */
function npmDialer(args: string[], env: Record<string, string>): Started {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(LIVEKIT_|SIP_|DIAL_|AGENT_|QUEUE_PREFIX|REDIS_URL|npm_)/.test(k)));
  const child = spawn('npm', ['run', '--silent', 'dialer', '--', ...args], {
    cwd: REPO,
    env: { ...clean, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const done = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { child, output: () => output, done };
}

/** What a terminal does on Ctrl-C: SIGINT to every process of the foreground group. */
function ctrlC(started: Started): void {
  if (started.child.pid === undefined) throw new Error('not started');
  process.kill(-started.child.pid, 'SIGINT');
}

function killGroup(started: Started | undefined): void {
  if (started?.child.pid === undefined || started.child.exitCode !== null) return;
  try {
    process.kill(-started.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

let sim: LiveKitSim;
let env: Record<string, string>;
const started: Started[] = [];

beforeAll(async () => {
  sim = await startLiveKitSim();
  env = {
    LIVEKIT_URL: sim.url,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    AGENT_NAME,
    AGENT_HTTP_PORT: String(await freePort()),
    OPENAI_API_KEY: 'sk-test',
    REDIS_URL: testRedisUrl(),
    QUEUE_PREFIX: prefix,
    // the drain below meets an idle job process still warming up, which agents-js 1.9 never lets acknowledge the
    // shutdown: the worker waits this long for it (10 s by default), then kills it and exits as it would anyway
    AGENT_JOB_SHUTDOWN_TIMEOUT_MS: String(JOB_SHUTDOWN_TIMEOUT_MS),
  };
});

afterAll(async () => {
  for (const s of started) killGroup(s);
  await sim.close();
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

describe('one Ctrl-C', () => {
  it('drains `agent start` instead of force-exiting it ("Force exit (Ctrl+C pressed twice)" before)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const registered = waitForEvent(sim.events, 'worker_registered', (e) => e.agentName === AGENT_NAME, REGISTER_TIMEOUT_MS);
    const agent = npmDialer(['agent', 'start'], env);
    started.push(agent);
    const { workerId } = await registered;
    const deregistered = waitForEvent(sim.events, 'worker_deregistered', (e) => e.workerId === workerId, DRAIN_TIMEOUT_MS);
    ctrlC(agent);
    await deregistered; // drained: the worker told the server it is leaving
    await agent.done;
    expect(agent.output()).not.toContain('Force exit');
  });

  it('drains `consumer` instead of stopping it at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const consumer = npmDialer(['consumer'], env);
    started.push(consumer);
    await waitFor(() => (consumer.output().includes('consumer started') ? true : undefined), REGISTER_TIMEOUT_MS, 'consumer start');
    ctrlC(consumer);
    await consumer.done;
    await waitFor(() => (consumer.output().includes('draining') ? true : undefined), DRAIN_TIMEOUT_MS, 'drain log');
    expect(consumer.output()).not.toContain('stopping now');
  });
});
