import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from './waitFor.js';

/**
 * A Redis primary with one replica and three sentinels, every one a `redis-server` on a free loopback port started
 * by the test and torn down by PID (issue 14's "primary + replica + 3 sentinels"). The primary keeps an AOF with
 * `appendfsync everysec`, the usual production setting.
 */
export interface SentinelTopology {
  /** The name the sentinels monitor the primary under. */
  readonly name: string;
  readonly sentinelPorts: readonly number[];
  /** `host:port,…` of the sentinels, as REDIS_SENTINELS takes it. */
  readonly sentinels: string;
  /** The port of the current primary, as the sentinels report it. */
  primaryPort(): Promise<number>;
  /** Freezes (SIGSTOP) or thaws (SIGCONT) the replica: a replica that has stopped acknowledging what it is sent. */
  freezeReplica(frozen: boolean): void;
  /** SIGKILLs the current primary; returns its port. */
  killPrimary(): Promise<number>;
  /** Freezes (SIGSTOP) or thaws (SIGCONT) the server on `port` (the primary, say: nothing it holds is lost). */
  freezeNode(port: number, frozen: boolean): void;
  /**
   * Starts the server that listened on `port` again, with its first arguments, directory and AOF. Resolves once it
   * answers. After killPrimary it comes back a primary, until the sentinels make it a replica of the promoted one (a
   * few seconds in which clients sent there write to a server whose writes will be dropped); with `replicaOf` (the
   * promoted primary's port) it comes back as that server's replica, as Redis' docs advise for a failed primary.
   */
  restartNode(port: number, options?: { replicaOf?: number }): Promise<void>;
  /** Resolves once the sentinels name a primary other than `oldPort` and it accepts writes; returns its port. */
  waitForFailover(oldPort: number, timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

/** True when every command is installed (`<command> --version` runs): the topology tests skip only where they are not. */
function installed(...commands: string[]): boolean {
  try {
    for (const command of commands) execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `redis-server` is installed: a Sentinel topology can start. */
export const hasRedisServer = installed('redis-server');
/** `redis-server` and `redis-cli` are installed: a Cluster can start (`redis-cli --cluster create`). */
export const hasRedisCluster = installed('redis-server', 'redis-cli');

const LOOPBACK = '127.0.0.1';
const SENTINEL_NAME = 'dialer-test';
const SENTINEL_COUNT = 3;
/** Sentinels agreeing that the primary is down before a failover starts. */
const QUORUM = 2;
/** How long a silent primary takes to count as down: short, so the failover happens within a test's time. */
const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 5000;
const START_TIMEOUT_MS = 20_000;
const DEFAULT_FAILOVER_WAIT_MS = 30_000;
const STOP_GRACE_MS = 3000;

/** Options of a topology the chaos test starts (the consumer tests take the defaults). */
export interface TopologyOptions {
  /** Hears every `redis-server` the topology spawns (a restart too), e.g. to register it for a last-resort kill. */
  onSpawn?: (name: string, child: ChildProcess) => void;
}

/** Sentinel options: how long a silent primary takes to count as down (default 1000 ms). */
export interface SentinelOptions extends TopologyOptions {
  downAfterMs?: number;
}

/** Cluster options: an AOF (`appendfsync everysec`) on every node, so a node restarted on its port and directory keeps its data. */
export interface ClusterOptions extends TopologyOptions {
  aof?: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Asks one server a command on a short-lived connection; undefined when it does not answer (a probe's answer). */
async function ask(port: number, ...command: [string, ...(string | number)[]]): Promise<unknown> {
  const c = new Redis({ host: LOOPBACK, port, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
  c.on('error', () => undefined); // a probe: its failures are the answer, read where it is used
  try {
    await c.connect();
    return await c.call(...command);
  } catch {
    return undefined;
  } finally {
    c.disconnect();
  }
}

/** SIGKILLs every process (a SIGSTOPped one too) and waits, bounded, until each has exited. */
async function stopAll(children: Iterable<ChildProcess>): Promise<void> {
  const all = [...children];
  for (const child of all) child.kill('SIGKILL');
  await Promise.all(
    all.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(resolve, STOP_GRACE_MS);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
}

/** `args` (a redis-server's command line) made to replicate the server on loopback port `primary`, whatever it replicated before. */
function withReplicaOf(args: readonly string[], primary: number): string[] {
  const at = args.indexOf('--replicaof');
  const rest = at === -1 ? [...args] : [...args.slice(0, at), ...args.slice(at + 3)];
  return [...rest, '--replicaof', LOOPBACK, String(primary)];
}

/** Starts the topology; throws (after stopping what it started) when `redis-server` is missing or it does not come up. */
export async function startSentinelTopology(options: SentinelOptions = {}): Promise<SentinelTopology> {
  const dir = mkdtempSync(join(tmpdir(), 'dialer-sentinel-'));
  const processes = new Map<number, ChildProcess>();
  const argsOf = new Map<number, string[]>();
  const downAfterMs = options.downAfterMs ?? DOWN_AFTER_MS;
  const start = (port: number, args: string[]) => {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    child.once('error', () => processes.delete(port));
    processes.set(port, child);
    if (!argsOf.has(port)) argsOf.set(port, args); // its first arguments, whatever a restart added
    options.onSpawn?.(`redis-server:${port}`, child);
  };
  const close = async () => {
    await stopAll(processes.values());
    processes.clear();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const primary = await freePort();
    const replica = await freePort();
    const common = ['--bind', LOOPBACK, '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction'];
    start(primary, ['--port', String(primary), '--dir', mkdir(dir, 'primary'), ...common]);
    start(replica, ['--port', String(replica), '--dir', mkdir(dir, 'replica'), '--replicaof', LOOPBACK, String(primary), ...common]);
    const sentinelPorts: number[] = [];
    for (let i = 0; i < SENTINEL_COUNT; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${LOOPBACK}`,
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_NAME} ${LOOPBACK} ${primary} ${QUORUM}`,
          `sentinel down-after-milliseconds ${SENTINEL_NAME} ${downAfterMs}`,
          `sentinel failover-timeout ${SENTINEL_NAME} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
          '',
        ].join('\n'),
      );
      start(port, [conf, '--sentinel']);
      sentinelPorts.push(port);
    }

    await waitFor(
      async () => {
        const info = await ask(replica, 'INFO', 'replication');
        return typeof info === 'string' && info.includes('master_link_status:up') ? true : undefined;
      },
      START_TIMEOUT_MS,
      'the replica in sync with the primary',
    );
    for (const port of sentinelPorts) {
      await waitFor(
        async () => {
          const fields = await ask(port, 'SENTINEL', 'MASTER', SENTINEL_NAME);
          if (!Array.isArray(fields)) return undefined;
          const info = new Map<string, string>();
          for (let i = 0; i + 1 < fields.length; i += 2) info.set(String(fields[i]), String(fields[i + 1]));
          return info.get('num-slaves') === '1' && info.get('num-other-sentinels') === String(SENTINEL_COUNT - 1) ? true : undefined;
        },
        START_TIMEOUT_MS,
        `sentinel ${port} to see the replica and the other sentinels`,
      );
    }

    const primaryPort = async (): Promise<number> => {
      for (const port of sentinelPorts) {
        const answer = await ask(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_NAME);
        if (Array.isArray(answer) && answer.length === 2) return Number(answer[1]);
      }
      throw new Error('no sentinel names a primary');
    };

    return {
      name: SENTINEL_NAME,
      sentinelPorts,
      sentinels: sentinelPorts.map((p) => `${LOOPBACK}:${p}`).join(','),
      primaryPort,
      freezeReplica: (frozen) => {
        processes.get(replica)?.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
      },
      killPrimary: async () => {
        const port = await primaryPort();
        processes.get(port)?.kill('SIGKILL');
        return port;
      },
      freezeNode: (port, frozen) => {
        processes.get(port)?.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
      },
      restartNode: async (port, restartOptions = {}) => {
        const first = argsOf.get(port);
        if (!first) throw new Error(`no redis-server was started on port ${port}`);
        const old = processes.get(port);
        if (old) await stopAll([old]);
        start(port, restartOptions.replicaOf === undefined ? first : withReplicaOf(first, restartOptions.replicaOf));
        await waitFor(async () => ((await ask(port, 'PING')) === 'PONG' ? true : undefined), START_TIMEOUT_MS, `redis-server ${port} back`);
      },
      waitForFailover: async (oldPort, timeoutMs = DEFAULT_FAILOVER_WAIT_MS) =>
        waitFor(
          async () => {
            const port = await primaryPort().catch(() => oldPort);
            if (port === oldPort) return undefined;
            const role = await ask(port, 'ROLE');
            return Array.isArray(role) && role[0] === 'master' ? port : undefined;
          },
          timeoutMs,
          'the sentinels to promote the replica',
        ),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

function mkdir(parent: string, name: string): string {
  const path = mkdtempSync(join(parent, `${name}-`));
  return path;
}

/** A Redis Cluster of three masters (no replicas), each a `redis-server` on a free loopback port, torn down by PID. */
export interface ClusterTopology {
  readonly ports: readonly number[];
  /** `host:port,…` of the masters, as REDIS_CLUSTER_NODES takes it. */
  readonly nodes: string;
  /** The port of the master serving `key`'s slot. */
  portForKey(key: string): Promise<number>;
  /** Freezes (SIGSTOP) or thaws (SIGCONT) the node on `port`. */
  freezeNode(port: number, frozen: boolean): void;
  /**
   * Stops the node on `port` (SIGTERM: it writes its AOF and nodes.conf), waits `downMs`, starts it again on the same
   * port, directory and arguments, and resolves once every node sees the cluster ok again.
   */
  restartNode(port: number, downMs: number): Promise<void>;
  close(): Promise<void>;
}

const CLUSTER_MASTERS = 3;

/** Starts the cluster; throws (after stopping what it started) when `redis-server`/`redis-cli` is missing or it fails. */
export async function startClusterTopology(options: ClusterOptions = {}): Promise<ClusterTopology> {
  const dir = mkdtempSync(join(tmpdir(), 'dialer-cluster-'));
  const children: ChildProcess[] = [];
  const nodes = new Map<number, { child: ChildProcess; args: string[] }>();
  const close = async () => {
    await stopAll(children);
    rmSync(dir, { recursive: true, force: true });
  };
  const startNode = (port: number, args: string[]) => {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    children.push(child);
    nodes.set(port, { child, args });
    options.onSpawn?.(`redis-server:${port}`, child);
  };
  const persistence = options.aof ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no'];
  const clusterOk = async (port: number) => {
    await waitFor(
      async () => {
        const info = await ask(port, 'CLUSTER', 'INFO');
        return typeof info === 'string' && info.includes('cluster_state:ok') ? true : undefined;
      },
      START_TIMEOUT_MS,
      `node ${port} to see the cluster ok`,
    );
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < CLUSTER_MASTERS; i++) {
      const port = await freePort();
      ports.push(port);
      const nodeDir = mkdir(dir, `node-${port}`);
      startNode(port, [
        '--port', String(port), '--bind', LOOPBACK, '--dir', nodeDir, '--save', '', ...persistence, '--cluster-enabled', 'yes',
        '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', '2000',
      ]);
    }
    for (const port of ports) await waitFor(async () => ((await ask(port, 'PING')) === 'PONG' ? true : undefined), START_TIMEOUT_MS, `node ${port}`);
    const create = spawn('redis-cli', ['--cluster', 'create', ...ports.map((p) => `${LOOPBACK}:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
    children.push(create);
    const created = await new Promise<number | null>((resolve) => create.once('exit', resolve));
    if (created !== 0) throw new Error(`redis-cli --cluster create exited with ${String(created)}`);
    for (const port of ports) await clusterOk(port);
    return {
      ports,
      nodes: ports.map((p) => `${LOOPBACK}:${p}`).join(','),
      portForKey: async (key) => {
        const slot = Number(await ask(ports[0] ?? 0, 'CLUSTER', 'KEYSLOT', key));
        const ranges = await ask(ports[0] ?? 0, 'CLUSTER', 'SLOTS');
        if (Array.isArray(ranges)) {
          for (const range of ranges) {
            if (!Array.isArray(range)) continue;
            const [from, to, master]: unknown[] = range;
            if (Number(from) <= slot && slot <= Number(to) && Array.isArray(master)) return Number(master[1]);
          }
        }
        throw new Error(`no master serves slot ${slot}`);
      },
      freezeNode: (port, frozen) => {
        nodes.get(port)?.child.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
      },
      restartNode: async (port, downMs) => {
        const node = nodes.get(port);
        if (!node) throw new Error(`no cluster node on port ${port}`);
        const { child, args } = node;
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          child.kill('SIGTERM');
          await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS))]);
          if (child.exitCode === null && child.signalCode === null) throw new Error(`cluster node ${port} did not stop on SIGTERM`);
        }
        await new Promise<void>((resolve) => setTimeout(resolve, downMs));
        startNode(port, args);
        await waitFor(async () => ((await ask(port, 'PING')) === 'PONG' ? true : undefined), START_TIMEOUT_MS, `node ${port} back`);
        for (const p of ports) await clusterOk(p);
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
