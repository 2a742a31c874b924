import type { Command } from 'commander';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore } from '../core/callStore.js';
import { InvalidInputError } from '../core/errors.js';
import { normalizePhoneNumber, REGION_SOURCES } from '../core/phone.js';
import { idSchema } from '../core/queues.js';
import { systemClock } from '../core/time.js';
import { cancelCalls } from '../producer/cancelCalls.js';
import { pauseCampaign, resumeCampaign } from '../producer/pauseCampaign.js';
import { requireCampaign } from './campaignNames.js';
import { action, cliContext, withRedis as withConfiguredRedis } from './cliContext.js';

/** Runs `body` on the configured Redis (unreachable: exit 4, the same line for every command). */
function withRedis<T>(body: (redis: RedisClient, prefix: string) => Promise<T>): Promise<T> {
  const { config } = cliContext();
  return withConfiguredRedis(config, (redis) => body(redis, config.queuePrefix));
}

/** Runs `body` once the campaign is known to exist (else exit 2 naming the campaigns close to it). */
function withCampaign<T>(campaignId: string, body: (redis: RedisClient, prefix: string) => Promise<T>): Promise<T> {
  return withRedis(async (redis, prefix) => {
    await requireCampaign(redis, prefix, campaignId);
    return body(redis, prefix);
  });
}

function validId(value: string, what: string): string {
  const parsed = idSchema.safeParse(value);
  if (!parsed.success) throw new InvalidInputError(`${what} "${value}": ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** `cancel` (calls not yet ringing end as `canceled`), `pause`/`resume`, and `dnc add|remove|list` (numbers that end as `skipped`). */
export function registerCampaignCommands(program: Command): void {
  program
    .command('cancel')
    .description('cancel calls not yet ringing (all of a campaign, or the given call ids): they end as `canceled`')
    .argument('[callIds...]', 'call ids (default: every call of the campaign)')
    .requiredOption('--campaign <id>', 'campaign id')
    .action(
      action(async (callIds: string[], opts: { campaign: string }) => {
        const campaignId = validId(opts.campaign, '--campaign');
        const ids = callIds.length ? callIds.map((id) => validId(id, 'call id')) : undefined;
        const summary = await withCampaign(campaignId, (redis, prefix) => cancelCalls(redis, prefix, { campaignId, callIds: ids }));
        process.stdout.write(
          `canceled ${summary.canceled.length}, in flight (not canceled) ${summary.inFlight.length}, ` +
            `already ended ${summary.alreadyEnded.length}${summary.unknown.length ? `, unknown ${summary.unknown.length}` : ''}\n`,
        );
        if (!ids || summary.unknown.length === 0) return;
        // named in the order they were given (the summary's order is the order the concurrent cancels finished in)
        const given = [...new Set(ids)];
        const unknown = new Set(summary.unknown);
        const refused = `no call ${given.filter((id) => unknown.has(id)).join(', ')} in campaign ${campaignId}`;
        // README's exit codes: an unknown call is refused input (2), unless other ids given were acted on: then the
        // command did its work (0) and names the ids it could not act on, on stderr
        if (unknown.size === given.length) throw new InvalidInputError(refused);
        process.stderr.write(`dialer: ${refused}\n`);
      }),
    );

  program
    .command('pause')
    .description('pause a campaign: its calls not yet ringing wait (no attempt spent); calls in progress carry on; an unknown campaign exits 2')
    .requiredOption('--campaign <id>', 'campaign id')
    .action(
      action(async (opts: { campaign: string }) => {
        const campaignId = validId(opts.campaign, '--campaign');
        const paused = await withCampaign(campaignId, (redis, prefix) => pauseCampaign(redis, prefix, campaignId));
        process.stdout.write(paused ? `paused ${campaignId}\n` : `${campaignId} was already paused\n`);
      }),
    );

  program
    .command('resume')
    .description('resume a paused campaign: the calls it held back are dialed again at once')
    .requiredOption('--campaign <id>', 'campaign id')
    .action(
      action(async (opts: { campaign: string }) => {
        const campaignId = validId(opts.campaign, '--campaign');
        const { wasPaused, released } = await withCampaign(campaignId, (redis, prefix) => resumeCampaign(redis, prefix, campaignId));
        process.stdout.write(wasPaused ? `resumed ${campaignId}: ${released} held calls released\n` : `${campaignId} was not paused\n`);
      }),
    );

  const dnc = program.command('dnc').description('the do-not-call list: listed numbers are never dialed (outcome `skipped`)');
  const numbersAction = (change: (store: CallStore, numbers: string[]) => Promise<number>, verb: string) =>
    action(async (numbers: string[]) => {
      const region = cliContext().config.dial.defaultRegion;
      // the list is global and `dnc` takes no --region: the setting is the one way to give national numbers a country
      const normalized = numbers.map((n) => normalizePhoneNumber(n, region, REGION_SOURCES.settings));
      const changed = await withRedis((redis, prefix) => change(new CallStore(redis, prefix, systemClock), normalized));
      process.stdout.write(`${verb} ${changed}\n`);
    });
  dnc
    .command('add')
    .argument('<numbers...>')
    .action(numbersAction((store, numbers) => store.addDoNotCall(numbers), 'added'));
  dnc
    .command('remove')
    .argument('<numbers...>')
    .action(numbersAction((store, numbers) => store.removeDoNotCall(numbers), 'removed'));
  dnc.command('list').action(
    action(async () => {
      const numbers = await withRedis((redis, prefix) => new CallStore(redis, prefix, systemClock).doNotCallList());
      process.stdout.write(numbers.map((n) => `${n}\n`).join(''));
    }),
  );
}
