import type { Command } from 'commander';
import { CallStore } from '../core/callStore.js';
import { idSchema } from '../core/queues.js';
import { InvalidInputError } from '../core/errors.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { systemClock } from '../core/time.js';
import { campaignReport, formatCampaignReport, recordsAsResults } from '../results/campaignReport.js';
import { surveyCsv } from '../agent/surveyCsv.js';
import { action, cliContext } from './cliContext.js';

/** Call lines in the table view; `--json` lists every call. */
const TABLE_CALL_LINES = 50;

/** `report --campaign ID [--json | --csv]`. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('show a campaign: totals by outcome, pending calls, and each call')
    .requiredOption('--campaign <id>', 'campaign id')
    .option('--json', 'print one JSON object {campaign, total, pending, byOutcome, calls}')
    .option('--csv', 'print ended calls as CSV, one column per survey question')
    .action(
      action(async (opts: { campaign: string; json?: boolean; csv?: boolean }) => {
        const campaign = idSchema.safeParse(opts.campaign);
        if (!campaign.success) throw new InvalidInputError(`--campaign: ${campaign.error.issues[0]?.message ?? 'invalid'}`);
        const { config } = cliContext();
        const redis = createProducerConnection(config.redisUrl);
        try {
          await waitUntilReady(redis);
          const store = new CallStore(redis, config.queuePrefix, systemClock);
          // the table shows the first lines only: reading 100,000 records for it would turn milliseconds into seconds
          const limit = opts.json || opts.csv ? undefined : TABLE_CALL_LINES;
          const [counters, records] = await Promise.all([store.counters(campaign.data), store.list(campaign.data, limit)]);
          const report = campaignReport(campaign.data, counters, records);
          if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
          else if (opts.csv) process.stdout.write(surveyCsv(recordsAsResults(records)));
          else {
            const paused = await store.isPaused(campaign.data);
            process.stdout.write(`${formatCampaignReport(report, records, TABLE_CALL_LINES, { paused })}\n`);
          }
        } finally {
          await closeConnection(redis);
        }
      }),
    );
}
