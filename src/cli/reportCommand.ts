import type { Command } from 'commander';
import { CallStore } from '../core/callStore.js';
import { idSchema } from '../core/queues.js';
import { InvalidInputError } from '../core/errors.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { systemClock } from '../core/time.js';
import { buildCampaignReport, formatCampaignReport } from '../results/campaignReport.js';
import { action, cliContext } from './cliContext.js';

/** `report --campaign ID [--json]`. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('show a campaign: totals by outcome, pending calls, and each call')
    .requiredOption('--campaign <id>', 'campaign id')
    .option('--json', 'print one JSON object {campaign, total, pending, byOutcome, calls}')
    .action(
      action(async (opts: { campaign: string; json?: boolean }) => {
        const campaign = idSchema.safeParse(opts.campaign);
        if (!campaign.success) throw new InvalidInputError(`--campaign: ${campaign.error.issues[0]?.message ?? 'invalid'}`);
        const { config } = cliContext();
        const redis = createProducerConnection(config.redisUrl);
        try {
          await waitUntilReady(redis);
          const report = await buildCampaignReport(new CallStore(redis, config.queuePrefix, systemClock), campaign.data);
          process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : `${formatCampaignReport(report)}\n`);
        } finally {
          await closeConnection(redis);
        }
      }),
    );
}
