import type { Command } from 'commander';
import { z } from 'zod';
import { InvalidInputError } from '../core/errors.js';
import { idSchema } from '../core/queues.js';
import { purgeCalls, type PurgeRequest } from '../results/retention.js';
import { requireCampaign } from './campaignNames.js';
import { action, cliContext, withRedis } from './cliContext.js';

/** An ISO 8601 date (midnight UTC) or date-time with a zone (`Z` or `+02:00`). */
const isoDateSchema = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);

/** `--before`'s value as epoch ms, or an InvalidInputError (exit 2). */
function parseBefore(value: string): number {
  const parsed = isoDateSchema.safeParse(value);
  const at = parsed.success ? Date.parse(parsed.data) : Number.NaN;
  if (Number.isNaN(at)) {
    throw new InvalidInputError(`--before "${value}": not an ISO 8601 date such as 2025-01-31 or 2025-01-31T18:00:00+01:00`);
  }
  return at;
}

/** `purge --campaign ID` / `purge --before DATE` (or both): deletes ended calls' records, counts and queue jobs. */
export function registerPurgeCommand(program: Command): void {
  program
    .command('purge')
    .description('delete ended calls: all of a campaign (--campaign), or those that ended before a date (--before); calls in flight are kept')
    .option('--campaign <id>', 'campaign id: every ended call of it (with --before: those that ended before the date)')
    .option('--before <date>', 'ISO 8601 date or date-time: ended calls that ended before it (all campaigns unless --campaign)')
    .action(
      action(async (opts: { campaign?: string; before?: string }) => {
        const before = opts.before === undefined ? undefined : parseBefore(opts.before);
        let request: PurgeRequest;
        if (opts.campaign !== undefined) {
          const campaign = idSchema.safeParse(opts.campaign);
          if (!campaign.success) throw new InvalidInputError(`--campaign "${opts.campaign}": ${campaign.error.issues[0]?.message ?? 'invalid'}`);
          request = { campaignId: campaign.data, before };
        } else if (before !== undefined) {
          request = { before };
        } else {
          throw new InvalidInputError('purge needs --campaign ID, --before DATE, or both');
        }
        const { config } = cliContext();
        // Redis away: the same one line and exit code (4) as every command
        await withRedis(config, async (redis) => {
          // a campaign that does not exist is a typo (exit 2 naming the close ones), not a purge of nothing
          if (request.campaignId !== undefined) await requireCampaign(redis, config.queuePrefix, request.campaignId);
          const s = await purgeCalls(redis, config.queuePrefix, request);
          const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
          process.stdout.write(
            `purged ${plural(s.purged, 'ended call')} in ${plural(s.campaigns, 'campaign')}` +
              `${s.campaignsRemoved ? ` (${s.campaignsRemoved} removed)` : ''}, ${plural(s.jobsRemoved, 'queue job')} removed; ` +
              `in flight (kept) ${s.inFlight}\n`,
          );
        });
      }),
    );
}
