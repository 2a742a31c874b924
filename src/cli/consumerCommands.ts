import type { Command } from 'commander';
import { handleShutdownSignals } from '../core/shutdownSignals.js';
import { startDialWorker } from '../consumer/dialWorker.js';
import { startResultsWorker } from '../results/resultsWorker.js';
import { action, cliContext } from './cliContext.js';

/** `consumer` (dial workers + results worker) and `results` (results worker alone). */
export function registerConsumerCommands(program: Command): void {
  program
    .command('consumer')
    .description('dial calls from the `calls` queue and apply results; SIGTERM/SIGINT drain, a second one forces')
    .action(
      action(async () => {
        const { config, logger } = cliContext();
        const dial = await startDialWorker({ config, logger });
        const results = await startResultsWorker({ config, logger });
        logger.info({ cps: config.dial.cps, concurrency: config.dial.concurrency, agentName: config.agentName }, 'consumer started');
        handleShutdownSignals(
          {
            drain: async () => {
              await dial.close();
              await results.close();
            },
            force: async () => {
              await dial.close(true);
              await results.close(true);
            },
          },
          logger,
        );
      }),
    );

  program
    .command('results')
    .description('apply `call-results` to call records and campaign counters')
    .action(
      action(async () => {
        const { config, logger } = cliContext();
        const results = await startResultsWorker({ config, logger });
        logger.info('results worker started');
        handleShutdownSignals({ drain: () => results.close(), force: () => results.close(true) }, logger);
      }),
    );
}
