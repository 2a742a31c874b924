import type { RedisOptions } from 'ioredis';

/** A Redis server address: host name or IP, and TCP port. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Where the dialer's Redis is, as every process connects to it (one connection factory, `redisConnection.ts`):
 * - `node`: one server at `url` (REDIS_URL);
 * - `sentinel`: the primary that Redis Sentinel names `name` (REDIS_SENTINEL_NAME), found through `sentinels`
 *   (REDIS_SENTINELS). ioredis asks the sentinels for the primary at every (re)connect, so after a failover each
 *   process reconnects to the promoted replica on its own. `url` still carries the primary's user, password and
 *   database (its host and port are ignored); `sentinelPassword` (REDIS_SENTINEL_PASSWORD) is the sentinels' own.
 * - `cluster`: a Redis Cluster reached through the seed `nodes` (REDIS_CLUSTER_NODES); ioredis learns the slots from
 *   them and follows MOVED/ASK and failovers. `url` carries the user and password. QUEUE_PREFIX must carry a hash
 *   tag (`{dialer}`): every key of BullMQ's and the dialer's then shares one slot, so scripts and transactions work.
 */
export type RedisTarget =
  | { kind: 'node'; url: string }
  | { kind: 'sentinel'; url: string; sentinels: readonly HostPort[]; name: string; sentinelPassword?: string }
  | { kind: 'cluster'; url: string; nodes: readonly HostPort[] };

/** Redis' default port, for a cluster seed given without one. */
export const DEFAULT_REDIS_PORT = 6379;

/** Redis Sentinel's default port (redis.io "High availability with Redis Sentinel"). */
export const DEFAULT_SENTINEL_PORT = 26379;

/** Thrown for an address list that is not `host:port,host:port`; the message names the setting and the bad entry. */
export class RedisAddressError extends Error {
  override readonly name = 'RedisAddressError';
}

/**
 * Parses `host:port,host:port` (spaces allowed, port defaulting to `defaultPort`; IPv6 hosts in brackets, `[::1]:26379`).
 * Throws RedisAddressError naming `setting` and the entry when one is malformed or the list is empty.
 */
export function parseHostPorts(list: string, setting: string, defaultPort: number): HostPort[] {
  const entries = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (entries.length === 0) throw new RedisAddressError(`${setting} must list at least one host:port`);
  return entries.map((entry) => {
    const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry);
    const host = match?.[1] ?? match?.[2];
    const port = match?.[3] === undefined ? defaultPort : Number(match[3]);
    if (!host || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new RedisAddressError(`${setting}: "${entry}" is not host:port (e.g. 10.0.0.5:${defaultPort})`);
    }
    return { host, port };
  });
}

/** How a target is shown in logs and messages: never a password. */
export function describeRedisTarget(target: RedisTarget): string {
  if (target.kind === 'node') {
    try {
      return new URL(target.url).host;
    } catch {
      return 'Redis';
    }
  }
  const list = (nodes: readonly HostPort[]) => nodes.map((s) => `${s.host}:${s.port}`).join(',');
  if (target.kind === 'cluster') return `Redis Cluster via ${list(target.nodes)}`;
  return `Sentinel primary "${target.name}" via ${list(target.sentinels)}`;
}

/** The hash tag Redis Cluster hashes a key by: the text inside its first non-empty `{…}`, or undefined. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

/** The user and password REDIS_URL carries, as ioredis options (for Sentinel's primary and every cluster node). */
export function credentialsOf(url: string): { username?: string; password?: string } {
  const parsed = new URL(url);
  return {
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
  };
}

/**
 * ioredis constructor arguments for a target: a URL (node) or options (sentinel). Options carry the URL's user,
 * password and database, since ioredis takes those for the primary from options when it connects through sentinels.
 */
export function connectionArguments(target: Exclude<RedisTarget, { kind: 'cluster' }>): { url: string | undefined; options: RedisOptions } {
  if (target.kind === 'node') return { url: target.url, options: {} };
  const url = new URL(target.url);
  const db = Number(url.pathname.replace(/^\//, '') || '0');
  return {
    url: undefined,
    options: {
      sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: target.name,
      ...credentialsOf(target.url),
      ...(Number.isInteger(db) && db > 0 ? { db } : {}),
      ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    },
  };
}
