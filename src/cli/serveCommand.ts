import type { Command } from 'commander';
import { ApiRedisUnreachableError, startApiServer } from '../api/server.js';
import { logProcessWarnings } from '../core/logger.js';
import { topologyMismatch } from '../core/redisTopologyMismatch.js';
import { handleShutdownSignals } from '../core/shutdownSignals.js';
import { action, cliContext, redisUnavailable } from './cliContext.js';
import { listenSettingError } from './listenErrors.js';

/** `serve`: the HTTP API (src/api) on API_HOST:API_PORT; the first SIGTERM/SIGINT drains requests, a second cuts them. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('HTTP API for other services on API_HOST:API_PORT (tokens from API_TOKENS); SIGTERM/SIGINT drain, a second one forces')
    .action(
      action(async () => {
        const { config, logger } = cliContext();
        logProcessWarnings(logger);
        const server = await startApiServer({ config, logger }).catch((err: unknown) => {
          // the one line and exit code (4) every command gives when Redis is away
          if (err instanceof ApiRedisUnreachableError) throw redisUnavailable(err.redis, err.cause);
          // a port in use (or not allowed) is the settings' problem (exit 2), named by the setting to change
          const listen = listenSettingError(err, { port: { name: 'API_PORT', value: config.api.port }, host: { name: 'API_HOST', value: config.api.host } });
          // REDIS_URL on a node of a Redis Cluster: its MOVED names REDIS_CLUSTER_NODES (exit 2), as for every command
          throw listen ?? topologyMismatch(config.redis, err) ?? err;
        });
        // handlers before the line that says it listens: a SIGTERM sent on that line must drain, not kill
        handleShutdownSignals({ drain: () => server.close(), force: () => server.close({ force: true }) }, logger);
        logger.info({ url: server.url, port: server.port, rateLimitPerSecond: config.api.rateLimitPerSecond }, 'API listening');
      }),
    );
}
