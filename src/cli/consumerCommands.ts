import type { Command } from 'commander';
import type { DialerConfig } from '../core/config.js';
import { logProcessWarnings, type Logger } from '../core/logger.js';
import { createDialerMetrics, startMetricsServer, type DialerMetrics, type MetricsServer } from '../core/metrics.js';
import { handleShutdownSignals } from '../core/shutdownSignals.js';
import { MINUTE, SECOND } from '../core/time.js';
import { startDialWorker } from '../consumer/dialWorker.js';
import { startResultsWorker } from '../results/resultsWorker.js';
import { startScheduleWorker } from '../schedules/callSchedules.js';
import { action, cliContext } from './cliContext.js';

/** Past the ringing timeout, a drain still running is stuck (Redis gone, a job that never ends): the process exits. */
const DRAIN_MARGIN_MS = MINUTE;

/** This process's metrics, served on METRICS_HOST:METRICS_PORT when METRICS_PORT is set. */
async function processMetrics(config: DialerConfig, logger: Logger): Promise<{ metrics: DialerMetrics; server: MetricsServer | undefined }> {
  const metrics = createDialerMetrics({ processMetrics: true });
  if (config.metricsPort === undefined) return { metrics, server: undefined };
  const server = await startMetricsServer(metrics.registry, config.metricsPort, config.metricsHost);
  logger.info({ host: server.host, port: server.port }, 'metrics served on /metrics');
  return { metrics, server };
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
        const { metrics, server } = await processMetrics(config, logger);
        const dial = await startDialWorker({ config, logger, metrics });
        const results = await startResultsWorker({ config, logger, metrics });
        // recurring calls' firings run here too, so no extra process is needed; BullMQ hands each firing's job to one
        // worker, and its calls' keys come from the firing time, so consumers side by side never double a firing
        const schedules = startScheduleWorker({ config, logger });
        logger.info({ cps: config.dial.cps, concurrency: config.dial.concurrency, agentName: config.agentName }, 'consumer started');
        handleShutdownSignals(
          {
            drain: async () => {
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
      }),
    );

  program
    .command('results')
    .description('apply `call-results` to call records and campaign counters')
    .action(
      action(async () => {
        const { config, logger } = cliContext();
        logProcessWarnings(logger);
        const { metrics, server } = await processMetrics(config, logger);
        const results = await startResultsWorker({ config, logger, metrics });
        logger.info('results worker started');
        handleShutdownSignals(
          {
            drain: async () => {
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
      }),
    );
}
