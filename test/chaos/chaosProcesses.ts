/**
 * The processes the chaos test starts and breaks: its own redis-server (AOF on, restartable on the same port and
 * directory, stoppable with SIGSTOP), the sim host (the LiveKit simulator, test/chaos/simHost.ts), the API proxy in
 * front of it (test/chaos/apiProxy.ts), the agent host (the simulated agent, test/chaos/agentHost.ts) and real
 * `dialer consumer` processes. Every child is registered by PID so the test can SIGKILL all of them, whatever
 * went wrong.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { redisAnswers } from '../../src/core/localRedis.js';
import { SECOND, sleep } from '../../src/core/time.js';
import type { ProxyDump } from './apiProxy.js';
import type { HostDump, HostStatus } from './chaosReport.js';

const LOOPBACK = '127.0.0.1';
/**
 * A `dialer consumer` starts from the build in dist/ (made by `npm ci`) in a second or two, or through tsx when src/
 * is newer than the build: 20 s and more when other work loads the cores (seen at a load average of 38, and over
 * 90 s for three at once).
 */
const START_TIMEOUT_MS = 180 * SECOND;
const POLL_MS = 50;
const EXIT_WAIT_MS = 10 * SECOND;
/** Requests to the sim host and the proxy answer at once, except an outage, which answers when it is over. */
const HOST_REQUEST_MARGIN_MS = 15 * SECOND;

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const simHostPath = fileURLToPath(new URL('./simHost.ts', import.meta.url));
const apiProxyPath = fileURLToPath(new URL('./apiProxy.ts', import.meta.url));
const agentHostPath = fileURLToPath(new URL('./agentHost.ts', import.meta.url));
const dialerBin = fileURLToPath(new URL('../../bin/dialer.mjs', import.meta.url));

/** Every process the test started, by PID, so they can all be killed even when the test fails. */
export class ChildRegistry {
  private readonly children = new Map<number, { name: string; child: ChildProcess }>();

  constructor() {
    // Last resort when the test process ends without afterAll (a vitest worker torn down on a timeout, say):
    // kill what is left, by PID, synchronously.
    process.once('exit', () => {
      for (const { child } of this.children.values()) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
    });
  }

  add(name: string, child: ChildProcess): void {
    if (child.pid !== undefined) this.children.set(child.pid, { name, child });
    child.once('exit', () => {
      if (child.pid !== undefined) this.children.delete(child.pid);
    });
  }

  /** SIGCONT (a stopped Redis) then SIGKILL every child still alive, by PID, and waits for them to exit. */
  async killAll(): Promise<void> {
    const alive = [...this.children.values()];
    for (const { child } of alive) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await Promise.all(alive.map(({ child }) => waitForExit(child, EXIT_WAIT_MS)));
  }
}

/** Resolves when `child` has exited (or at once if it already has), or after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A free TCP port on loopback (closed again before it is returned). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** The test's own redis-server: AOF every second, noeviction, on one port and one directory across restarts. */
export class ChaosRedis {
  private child: ChildProcess | undefined;
  readonly url: string;

  constructor(
    private readonly registry: ChildRegistry,
    readonly port: number,
    private readonly dir: string,
  ) {
    this.url = `redis://${LOOPBACK}:${port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port', String(this.port),
        '--bind', LOOPBACK,
        '--dir', this.dir,
        '--appendonly', 'yes',
        '--appendfsync', 'everysec',
        '--save', '',
        '--maxmemory-policy', 'noeviction',
      ],
      { stdio: 'ignore' },
    );
    this.registry.add('redis-server', child);
    this.child = child;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await redisAnswers(this.url))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} on port ${this.port}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${this.port}`);
      await sleep(POLL_MS);
    }
  }

  /** SIGTERM (Redis writes its AOF and exits), `downMs` with no Redis, then a new server on the same port and AOF. */
  async restart(downMs: number): Promise<void> {
    const child = this.child;
    if (child) {
      child.kill('SIGTERM');
      await waitForExit(child, EXIT_WAIT_MS);
      if (child.exitCode === null && child.signalCode === null) throw new Error('redis-server did not stop on SIGTERM');
    }
    await sleep(downMs);
    await this.start();
  }

  /** Freezes Redis (SIGSTOP) for `ms`: connections stay open, nothing answers, then it carries on (SIGCONT). */
  async block(ms: number): Promise<void> {
    const child = this.child;
    if (!child) throw new Error('redis-server is not running');
    child.kill('SIGSTOP');
    try {
      await sleep(ms);
    } finally {
      child.kill('SIGCONT');
    }
  }
}

const replySchema = z.object({ id: z.number(), ok: z.boolean(), result: z.unknown().optional(), error: z.string().optional() });

/** A child process spawned with `node --import tsx` and an IPC channel, answering `{id, cmd}` requests. */
class IpcChild {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  readonly child: ChildProcess;
  /** Messages that are not replies (the sim host's events). */
  onOther: (message: unknown) => void = () => undefined;

  constructor(
    registry: ChildRegistry,
    readonly name: string,
    script: string,
    env: Record<string, string>,
    logPath: string,
  ) {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    registry.add(name, child);
    this.child = child;
    child.stderr?.pipe(createWriteStream(logPath));
    child.on('message', (message: unknown) => {
      const reply = replySchema.safeParse(message);
      if (!reply.success) {
        this.onOther(message);
        return;
      }
      const pending = this.waiting.get(reply.data.id);
      if (!pending) return;
      this.waiting.delete(reply.data.id);
      if (reply.data.ok) pending.resolve(reply.data.result);
      else pending.reject(new Error(`${name}: ${reply.data.error ?? 'failed'}`));
    });
    child.once('exit', (code, signal) => {
      for (const pending of this.waiting.values()) pending.reject(new Error(`${name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  /** The first stdout line, once the process is up. */
  firstLine(timeoutMs: number): Promise<string> {
    return firstStdoutLine(this.child, this.name, timeoutMs, '; see its log');
  }

  request(command: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name} did not answer ${String(command.cmd)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.child.send({ id, ...command });
    });
  }
}

const hostReadySchema = z.object({ port: z.number().int().positive(), apiKey: z.string(), apiSecret: z.string(), outboundTrunkId: z.string() });
export type SimHostReady = z.infer<typeof hostReadySchema>;

/** The sim host process (the simulator): its status, its log and its events. */
export class SimHost {
  private constructor(
    private readonly ipc: IpcChild,
    readonly ready: SimHostReady,
  ) {}

  static async start(registry: ChildRegistry, env: Record<string, string>, logPath: string): Promise<SimHost> {
    const ipc = new IpcChild(registry, 'sim-host', simHostPath, env, logPath);
    return new SimHost(ipc, hostReadySchema.parse(JSON.parse(await ipc.firstLine(START_TIMEOUT_MS))));
  }

  /** Hands every simulator event (`{event, payload}`) to `listener`. */
  onEvent(listener: (message: unknown) => void): void {
    this.ipc.onOther = listener;
  }

  async status(): Promise<HostStatus> {
    return (await this.ipc.request({ cmd: 'status' }, HOST_REQUEST_MARGIN_MS)) as HostStatus;
  }

  /** The simulator's own log, written to `path` by the host and read back. */
  async dump(path: string): Promise<HostDump> {
    await this.ipc.request({ cmd: 'dump', path }, HOST_REQUEST_MARGIN_MS);
    return JSON.parse(await readFile(path, 'utf8')) as HostDump;
  }
}

/** The agent host process (the simulated agent), fed the simulator's events. */
export class AgentHost {
  private constructor(private readonly ipc: IpcChild) {}

  static async start(registry: ChildRegistry, env: Record<string, string>, logPath: string): Promise<AgentHost> {
    const ipc = new IpcChild(registry, 'agent-host', agentHostPath, env, logPath);
    await ipc.firstLine(START_TIMEOUT_MS);
    return new AgentHost(ipc);
  }

  /** Passes one simulator event on (dropped once the process is gone). */
  relay(message: unknown): void {
    if (this.ipc.child.connected) this.ipc.child.send(message as object);
  }
}

/** The API proxy process in front of the simulator: LiveKit's door, with outages and dial arrival times. */
export class ApiProxyProcess {
  private constructor(
    private readonly ipc: IpcChild,
    readonly url: string,
  ) {}

  /** Listens on `port` (chosen before the sim host starts, which needs the URL) and forwards to `upstreamPort`. */
  static async start(registry: ChildRegistry, port: number, upstreamPort: number, logPath: string): Promise<ApiProxyProcess> {
    const env = { CHAOS_PROXY_PORT: String(port), CHAOS_UPSTREAM_PORT: String(upstreamPort) };
    const ipc = new IpcChild(registry, 'api-proxy', apiProxyPath, env, logPath);
    await ipc.firstLine(START_TIMEOUT_MS);
    return new ApiProxyProcess(ipc, `http://${LOOPBACK}:${port}`);
  }

  /** LiveKit's API unreachable for `ms`; resolves when it is back. */
  async outage(ms: number): Promise<void> {
    await this.ipc.request({ cmd: 'outage', ms }, ms + HOST_REQUEST_MARGIN_MS);
  }

  async dump(path: string): Promise<ProxyDump> {
    await this.ipc.request({ cmd: 'dump', path }, HOST_REQUEST_MARGIN_MS);
    return JSON.parse(await readFile(path, 'utf8')) as ProxyDump;
  }
}

/** One `dialer consumer` process (dial workers + results worker), its stderr logged to a file. */
export class ConsumerProcess {
  /** Log lines that were not pino JSON (README: every line is JSON). */
  nonJsonLines = 0;
  /** True once it logged "consumer started" (its workers take jobs). */
  isReady = false;
  readonly child: ChildProcess;
  private readonly log: WriteStream;
  private readonly started: Promise<void>;

  constructor(
    registry: ChildRegistry,
    readonly name: string,
    env: Record<string, string>,
    logPath: string,
  ) {
    const child = spawn(process.execPath, [dialerBin, 'consumer'], { cwd: repoRoot, env, stdio: ['ignore', 'ignore', 'pipe'] });
    registry.add(name, child);
    this.child = child;
    this.log = createWriteStream(logPath);
    this.started = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      let partial = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        this.log.write(chunk);
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (line.trim() === '') continue;
          if (!line.startsWith('{')) this.nonJsonLines += 1;
          else if (line.includes('"consumer started"')) {
            clearTimeout(timer);
            this.isReady = true;
            resolve();
          }
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before it started; see its log`));
      });
    });
    this.started.catch(() => undefined); // awaited by whoever needs it; a kill before start-up is not an error
  }

  ready(): Promise<void> {
    return this.started;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL, as a crash or an OOM kill would: no drain, no clean-up. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await waitForExit(this.child, EXIT_WAIT_MS);
    this.log.end();
  }
}

/**
 * The first stdout line of `child` (a process announcing it is up, e.g. its port as JSON); rejects after `timeoutMs`,
 * or when it exits first (`hint` is added to that message). Shared by the chaos test and bench:cps.
 */
export function firstStdoutLine(child: ChildProcess, name: string, timeoutMs: number, hint = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start in time`)), timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const end = buffered.indexOf('\n');
      if (end >= 0) {
        clearTimeout(timer);
        resolve(buffered.slice(0, end));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready (${code ?? signal})${hint}`));
    });
  });
}
