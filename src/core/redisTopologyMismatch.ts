/*
 * A Redis that answers but is not the topology the settings describe: every process (the commands, `serve`, `agent
 * start`) turns it into the setting to change (exit 2) instead of a bare Redis reply or "cannot reach Redis".
 */
import { settingError } from './config.js';
import { ConfigError, errorMessage } from './errors.js';
import { describeRedisTarget, type RedisTarget } from './redisTarget.js';

/** Redis Cluster's reply to a client that is not a cluster client when a key's slot is served by another node. */
const CLUSTER_REDIRECT_REPLY = /^(?:MOVED|ASK) \d+ \S+/;
/** What a Redis without cluster mode answers to CLUSTER SLOTS (cluster.c), which ioredis' Cluster asks its seeds. */
const CLUSTER_DISABLED_REPLY = 'cluster support disabled';

/**
 * What a Redis that is not a sentinel answers to ioredis' SENTINEL GET-MASTER-ADDR-BY-NAME (e.g. `ERR unknown command
 * 'sentinel', with args beginning with: …`), as ioredis' SentinelConnector carries it in "All sentinels are
 * unreachable … Last error: …".
 */
const NOT_A_SENTINEL_REPLY = /ERR unknown command '?sentinel'?[^\n]*/i;

/** The last seed's reply ioredis' ClusterAllFailedError carries ("Failed to refresh slots cache."), if any. */
function lastNodeErrorMessage(err: unknown): string | undefined {
  if (!(err instanceof Error) || !('lastNodeError' in err)) return undefined;
  return err.lastNodeError instanceof Error ? err.lastNodeError.message : undefined;
}

/**
 * A Redis that answers but is not the topology the settings describe, as a ConfigError naming the setting to change
 * (exit 2), else undefined: REDIS_URL on a node of a Redis Cluster (a key's slot elsewhere answers MOVED, which a
 * plain client does not follow), REDIS_CLUSTER_NODES on a Redis without cluster mode (it refuses CLUSTER SLOTS), or
 * REDIS_SENTINELS on a Redis that is not a sentinel (the last one listed refused the SENTINEL command).
 */
export function topologyMismatch(target: string | RedisTarget, err: unknown): ConfigError | undefined {
  if (err instanceof ConfigError) return undefined; // already says which setting to change
  const resolved: RedisTarget = typeof target === 'string' ? { kind: 'node', url: target } : target;
  const message = errorMessage(err);
  if (resolved.kind === 'node') {
    const redirect = CLUSTER_REDIRECT_REPLY.exec(message);
    if (!redirect) return undefined;
    const where = describeRedisTarget(resolved);
    return settingError(
      'REDIS_CLUSTER_NODES',
      `the Redis at ${where} is a node of a Redis Cluster (it answered "${redirect[0]}"): set REDIS_CLUSTER_NODES to its nodes (e.g. ${where}) and QUEUE_PREFIX to a hash tag such as {dialer}`,
    );
  }
  if (resolved.kind === 'sentinel') {
    const refused = NOT_A_SENTINEL_REPLY.exec(message);
    if (!refused) return undefined;
    const listed = resolved.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
    return settingError(
      'REDIS_SENTINELS',
      `no sentinel answered at ${listed}, and a Redis there is not a sentinel (it answered "${refused[0]}"): list the sentinels' addresses (port 26379 unless set otherwise), or unset REDIS_SENTINELS and set REDIS_URL to that Redis`,
    );
  }
  const reply = lastNodeErrorMessage(err) ?? message;
  if (!reply.includes(CLUSTER_DISABLED_REPLY)) return undefined;
  const seeds = resolved.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  return settingError(
    'REDIS_CLUSTER_NODES',
    `the Redis at ${seeds} runs without cluster mode (${reply}): unset REDIS_CLUSTER_NODES and set REDIS_URL to it, or list the nodes of a Redis Cluster`,
  );
}
