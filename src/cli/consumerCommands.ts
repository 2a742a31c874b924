import type { Command } from 'commander';
import { requireDialSettings, type DialerConfig } from '../core/config.js';
import { logProcessWarnings, type Logger } from '../core/logger.js';
import { createDialerMetrics, startMetricsServer, type DialerMetrics, type MetricsServer } from '../core/metrics.js';
import { handleShutdownSignals } from '../core/shutdownSignals.js';
import { MINUTE, SECOND } from '../core/time.js';
import { startDialWorker } from '../consumer/dialWorker.js';
import { startResultsWorker } from '../results/resultsWorker.js';
import { startScheduleWorker } from '../schedules/callSchedules.js';
import type { Worker } from 'bullmq';
import { action, cliContext, exitWithError, redisAwayError, requireRedis } from './cliContext.js';
import { listenSettingError } from './listenErrors.js';

/** Past the ringing timeout, a drain still running is stuck (Redis gone, a job that never ends): the process exits. */
const DRAIN_MARGIN_MS = MINUTE;

/** This process's metrics, served on METRICS_HOST:METRICS_PORT when METRICS_PORT is set. */
async function processMetrics(config: DialerConfig, logger: Logger): Promise<{ metrics: DialerMetrics; server: MetricsServer | undefined }> {
  const metrics = createDialerMetrics({ processMetrics: true });
  if (config.metricsPort === undefined) return { metrics, server: undefined };
  const { metricsPort: port, metricsHost: host } = config;
  const server = await startMetricsServer(metrics.registry, port, host).catch((err: unknown) => {
    // a port in use (or not allowed) is the settings' problem (exit 2), named by the setting to change
    throw listenSettingError(err, { port: { name: 'METRICS_PORT', value: port }, host: { name: 'METRICS_HOST', value: host } }) ?? err;
  });
  logger.info({ host: server.host, port: server.port }, 'metrics served on /metrics');
  return { metrics, server };
}

/**
 * Counts the jobs BullMQ workers (one per call shard) are processing right now, from its `active` event to its `completed` or `failed`
 * (a retry is a `failed` too: the job goes back to the queue).
 */
function countInFlight(workers: ReadonlyArray<Pick<Worker, 'on'>>): () => number {
  let active = 0;
  const done = () => (active = Math.max(0, active - 1));
  for (const worker of workers) {
    worker.on('active', () => (active += 1));
    worker.on('completed', done);
    worker.on('failed', done);
  }
  return () => active;
}

/**
 * Before a drain: with no call being dialed (`dialsInFlight` 0) and Redis not answering, there is nothing to drain,
 * since results and schedule firings are Redis work that cannot finish while it is away. Then the process ends at once
 * with the one line and exit 4, instead of waiting out the drain timeout for a Redis that may not come back (a
 * container's stop timeout would SIGKILL it first). Resolves when the drain should go on.
 */
async function exitIfNothingToDrain(config: DialerConfig, dialsInFlight: () => number): Promise<void> {
  if (dialsInFlight() > 0) return;
  const away = await redisAwayError(config);
  if (away && dialsInFlight() === 0) exitWithError(away);
}

/** Closes the metrics server after the workers, logging (not throwing) a failure. */
function closeMetrics(server: MetricsServer | undefined, logger: Logger): Promise<void> {
  return server ? server.close().catch((err: unknown) => logger.error({ err }, 'closing the metrics server failed')) : Promise.resolve();
}

/** `consumer` (dial workers, results worker, schedule firings) and `results` (results worker alone). */
export function registerConsumerCommands(program: Command): void {
  program
    .command('consumer')
    .description('dial calls from the `calls` queue and apply results; SIGTERM/SIGINT drain, a second one forces')
    .action(
      action(async () => {
        const { config, logger } = cliContext();
        logProcessWarnings(logger);
        requireDialSettings(config); // settings first (exit 2), then Redis (exit 4)
        await requireRedis(config);
        const { metrics, server } = await processMetrics(config, logger);
        const dial = await startDialWorker({ config, logger, metrics });
        const dialsInFlight = countInFlight(dial.workers);
        const results = await startResultsWorker({ config, logger, metrics });
        // recurring calls' firings run here too, so no extra process is needed; BullMQ hands each firing's job to one
        // worker, and its calls' keys come from the firing time, so consumers side by side never double a firing
        const schedules = startScheduleWorker({ config, logger });
        // the signal handlers first, then the line that says it runs: whoever sends SIGTERM on seeing that line must
        // reach the drain, not Node's default (death by the signal, seen once on a starved machine)
        handleShutdownSignals(
          {
            drain: async () => {
              await exitIfNothingToDrain(config, dialsInFlight);
              await dial.close();
              await schedules.close();
              await results.close();
              await closeMetrics(server, logger);
            },
            force: async () => {
              await dial.close(true);
              await schedules.close();
              await results.close(true);
              await closeMetrics(server, logger);
            },
          },
          logger,
          undefined,
          // a drain waits for ringing calls (up to the ringing timeout); past that something is stuck (Redis away)
          { drainTimeoutMs: config.dial.ringingTimeoutS * SECOND + DRAIN_MARGIN_MS },
        );
        logger.info({ cps: config.dial.cps, concurrency: config.dial.concurrency, agentName: config.agentName }, 'consumer started');
      }),
    );

  program
    .command('results')
    .description('apply `call-results` to call records and campaign counters')
    .action(
      action(async () => {
        const { config, logger } = cliContext();
        logProcessWarnings(logger);
        await requireRedis(config);
        const { metrics, server } = await processMetrics(config, logger);
        const results = await startResultsWorker({ config, logger, metrics });
        // handlers before the line that says it runs (see the consumer above)
        handleShutdownSignals(
          {
            drain: async () => {
              await exitIfNothingToDrain(config, () => 0);
              await results.close();
              await closeMetrics(server, logger);
            },
            force: async () => {
              await results.close(true);
              await closeMetrics(server, logger);
            },
          },
          logger,
          undefined,
          { drainTimeoutMs: DRAIN_MARGIN_MS },
        );
        logger.info('results worker started');
      }),
    );
}
