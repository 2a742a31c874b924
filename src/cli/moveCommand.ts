import type { Command } from 'commander';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore } from '../core/callStore.js';
import { InvalidInputError } from '../core/errors.js';
import { idSchema } from '../core/queues.js';
import { isTimeZone } from '../core/callWindow.js';
import { systemClock } from '../core/time.js';
import { moveCallTo, type MoveTarget } from '../schedules/moveCall.js';
import { requireCampaign } from './campaignNames.js';
import { action, cliContext, withRedis } from './cliContext.js';
import { UnknownCampaignError } from './exitCodes.js';

function validId(value: string, what: string): string {
  const parsed = idSchema.safeParse(value);
  if (!parsed.success) throw new InvalidInputError(`${what} "${value}": ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** The one campaign holding a record of `callId`; InvalidInputError when none or several do. */
async function campaignOfCall(redis: RedisClient, store: CallStore, callId: string): Promise<string> {
  const campaigns = await store.campaigns();
  // one command per campaign, sent together: their records may live in different call shards (nodes of a cluster),
  // which one pipeline cannot span
  const replies = await Promise.all(campaigns.map((c) => redis.exists(store.keys.callRecord(c, callId))));
  const holding = campaigns.filter((_, i) => replies[i] === 1);
  if (holding.length === 1 && holding[0] !== undefined) return holding[0];
  if (holding.length === 0) throw new UnknownCampaignError(`no call ${callId}`);
  throw new InvalidInputError(`call id ${callId} is in several campaigns (${holding.join(', ')}): name one with --campaign`);
}

interface MoveFlags {
  campaign?: string;
  key?: string;
  at?: string;
  delay?: string;
  timeZone?: string;
}

/** `move [callId] [--campaign ID] [--key KEY] (--at TIME | --delay DURATION) [--time-zone IANA]`. */
export function registerMoveCommand(program: Command): void {
  program
    .command('move')
    .description('move a scheduled call (not ringing yet) to another time, by call id or by --key and --campaign')
    .argument('[callId]', 'the call id enqueue printed (or give --key and --campaign)')
    .option('--campaign <id>', 'its campaign (found by itself for a call id when left out)')
    .option('--key <key>', 'the idempotency key it was enqueued with (--key, or the CSV key column), with --campaign')
    .option('--at <time>', 'the new time: 2030-01-31T09:30:00Z, or without offset in --time-zone; within 90 days')
    .option('--delay <duration>', 'the new time from now: 90 (seconds), 90s, 5m, 1h30m, 2d or PT5M; 0 means now')
    .option('--time-zone <iana>', 'time zone of an --at without offset (default DIAL_TIME_ZONE)')
    .action(
      action(async (callIdArg: string | undefined, flags: MoveFlags) => {
        if ((callIdArg === undefined) === (flags.key === undefined)) throw new InvalidInputError('name the call: give its call id, or --key with --campaign');
        if (flags.key !== undefined && flags.campaign === undefined) throw new InvalidInputError('--key needs --campaign (a key names a call within its campaign)');
        if (flags.at === undefined && flags.delay === undefined) throw new InvalidInputError('give the new time: --at TIME or --delay DURATION');
        if (flags.timeZone !== undefined && !isTimeZone(flags.timeZone)) throw new InvalidInputError(`--time-zone: "${flags.timeZone}" is not an IANA time zone such as America/New_York`);
        const { config } = cliContext();
        const result = await withRedis(config, async (redis) => {
          const store = new CallStore(redis, config.queuePrefix, systemClock);
          const campaignId = flags.campaign === undefined ? undefined : validId(flags.campaign, '--campaign');
          if (campaignId !== undefined) await requireCampaign(redis, config.queuePrefix, campaignId);
          // the one path `POST /v1/campaigns/{id}/calls/move` takes too: a key read as the producer keyed the call, the
          // time with the bounds enqueue's --at/--delay have (an --at up to 5 minutes past, or --delay 0, means now)
          const callId = callIdArg === undefined ? undefined : validId(callIdArg, 'call id');
          const target: MoveTarget =
            callId === undefined ? { campaignId: campaignId ?? '', key: flags.key ?? '' } : { callId, campaignId: campaignId ?? (await campaignOfCall(redis, store, callId)) };
          return moveCallTo(redis, config.queuePrefix, systemClock, target, { at: flags.at, delay: flags.delay }, flags.timeZone ?? config.dial.timeZone);
        });
        switch (result.status) {
          case 'moved':
            process.stdout.write(`moved ${result.callId} (campaign ${result.campaignId}) to ${new Date(result.at).toISOString()}\n`);
            return;
          case 'not_found':
            throw new UnknownCampaignError(`no call ${result.callId} in campaign ${result.campaignId}${result.key === undefined ? '' : ` (key ${JSON.stringify(result.key)})`}`);
          case 'not_movable':
            throw new InvalidInputError(`call ${result.callId} cannot be moved: ${result.why}`);
        }
      }),
    );
}
