import type { Command } from 'commander';
import { CampaignStore, type CampaignView } from '../campaigns/campaignStore.js';
import { CallStore } from '../core/callStore.js';
import { InvalidInputError } from '../core/errors.js';
import { idSchema } from '../core/queues.js';
import { systemClock } from '../core/time.js';
import { campaignCsv, campaignReport, formatCampaignReport } from '../results/campaignReport.js';
import { requireCampaign } from './campaignNames.js';
import { action, cliContext, withRedis } from './cliContext.js';

/** Call lines in the table view; `--json` and `--csv` list every call. */
const TABLE_CALL_LINES = 50;

/** `report --campaign ID [--json | --csv]`. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('show a campaign: totals by outcome, pending calls, and each call; --json and --csv list every call in full')
    .requiredOption('--campaign <id>', 'campaign id')
    .option('--json', 'one JSON object {campaign, total, pending, byOutcome, calls: [every call in full]}')
    .option('--csv', 'one row per call: number, extension, key, outcome, reason, attempts, SIP status, times, duration, the metadata columns, survey answers')
    .action(
      action(async (opts: { campaign: string; json?: boolean; csv?: boolean }) => {
        const campaign = idSchema.safeParse(opts.campaign);
        if (!campaign.success) throw new InvalidInputError(`--campaign: ${campaign.error.issues[0]?.message ?? 'invalid'}`);
        if (opts.json && opts.csv) throw new InvalidInputError('use either --json or --csv, not both');
        const campaignId = campaign.data;
        const { config } = cliContext();
        const output = await withRedis(config, async (redis) => {
          const store = new CallStore(redis, config.queuePrefix, systemClock);
          const campaigns = new CampaignStore(redis, config.queuePrefix, systemClock);
          // a defined campaign is known even before its first call
          const view = (await campaigns.get(campaignId)) ? await campaigns.show(campaignId) : undefined;
          if (!view) await requireCampaign(store, campaignId);
          const full = opts.json === true || opts.csv === true;
          // the table shows the first lines only: reading 100,000 records for it would turn milliseconds into seconds
          const [counters, records] = await Promise.all([store.counters(campaignId), store.list(campaignId, full ? undefined : TABLE_CALL_LINES)]);
          const keys = full ? await store.idempotencyKeys(campaignId, records.map((r) => r.callId)) : new Map<string, string>();
          const report = campaignReport(campaignId, counters, records, keys);
          if (opts.json) return `${JSON.stringify(report)}\n`;
          if (opts.csv) return campaignCsv(report);
          const paused = await store.isPaused(campaignId);
          const table = `${formatCampaignReport(report, records, TABLE_CALL_LINES, { paused })}\n`;
          return view ? `${campaignHeader(view)}\n${table}` : table;
        });
        process.stdout.write(output);
      }),
    );
}

/** The campaign object's status and settings, above the table (a webhook secret is never shown). */
export function campaignHeader(view: CampaignView): string {
  const { id: _id, state: _state, status, paused: _paused, created_at: _c, updated_at: _u, ramp_started_at: _r, ...settings } = view;
  const shown = Object.entries(settings).map(([name, value]) => {
    const safe = name === 'webhook' && value && typeof value === 'object' ? { ...(value as object), secret: undefined } : value;
    return `${name} ${typeof safe === 'object' ? JSON.stringify(safe) : String(safe)}`;
  });
  return `campaign ${view.id}: ${status}${shown.length ? ` (${shown.join(', ')})` : ' (global settings)'}`;
}
