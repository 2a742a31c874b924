/**
 * `dialer campaign create|list|show|update|pause|resume|cancel|archive`: campaign objects (src/campaigns). The older
 * `dialer campaigns`, `pause`, `resume` and `cancel --campaign` keep working as they were, on any campaign with calls.
 */
import type { Command } from 'commander';
import { loadProfileCatalog } from '../agent/profiles.js';
import type { RedisClient } from '../core/redisClient.js';
import { campaignStatus, type CampaignSettings } from '../campaigns/campaignSchema.js';
import { CampaignNotFoundError, CampaignStore, withSecretHidden, type CampaignView } from '../campaigns/campaignStore.js';
import { errorMessage, InvalidInputError } from '../core/errors.js';
import { parseDuration } from '../core/time.js';
import { systemClock } from '../core/time.js';
import { knownCampaigns, unknownCampaignMessage } from './campaignNames.js';
import { action, cliContext, withRedis } from './cliContext.js';
import { UnknownCampaignError } from './exitCodes.js';
import { refuseReservedKeys } from './jsonFlags.js';

/**
 * Runs `body` on the campaign store. An id that names no campaign at all (neither a document nor calls) is refused
 * naming the close campaigns, as every command that takes a campaign does; one with calls but no document keeps the
 * store's message, which says how to define it.
 */
function withCampaigns<T>(body: (store: CampaignStore, redis: RedisClient) => Promise<T>): Promise<T> {
  const { config } = cliContext();
  return withRedis(config, async (redis) => {
    try {
      return await body(new CampaignStore(redis, config.queuePrefix, systemClock, () => loadProfileCatalog(process.env)), redis);
    } catch (err) {
      if (err instanceof CampaignNotFoundError) {
        const known = await knownCampaigns(redis, config.queuePrefix);
        if (!known.includes(err.campaignId)) throw new UnknownCampaignError(unknownCampaignMessage(err.campaignId, known));
      }
      throw err;
    }
  });
}

/** The flags both `create` and `update` take, as commander hands them over. */
interface SettingFlags {
  name?: string;
  profile?: string;
  trunk?: string;
  cps?: string;
  maxActive?: string;
  rampFrom?: string;
  rampOver?: string;
  maxAttempts?: string;
  retryBusy?: string;
  retryNoAnswer?: string;
  retryFailed?: string;
  window?: string;
  days?: string;
  timeZone?: string;
  region?: string;
  startsAt?: string;
  endsAt?: string;
  webhookUrl?: string;
  webhookSecret?: string;
  settings?: string;
}

const num = (value: string | undefined): number | undefined => (value === undefined ? undefined : Number(value));

function seconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidInputError(`${flag} "${value}": not a duration (e.g. 90, 90s, 5m, 1h)`);
  return ms / 1000;
}

/** Settings from flags (unchecked: the store validates them and names every bad field); `--settings` JSON first. */
function settingsFrom(flags: SettingFlags): Record<string, unknown> {
  let base: Record<string, unknown> = {};
  if (flags.settings !== undefined) {
    try {
      base = JSON.parse(flags.settings) as Record<string, unknown>;
    } catch (err) {
      throw new InvalidInputError(`--settings: not JSON (${errorMessage(err)})`);
    }
    refuseReservedKeys('--settings', flags.settings, base);
  }
  const s: Partial<Record<keyof CampaignSettings, unknown>> = {
    name: flags.name,
    agent_profile: flags.profile,
    trunk_id: flags.trunk,
    cps: num(flags.cps),
    max_active_calls: num(flags.maxActive),
    max_attempts: num(flags.maxAttempts),
    default_region: flags.region?.toUpperCase(),
    starts_at: flags.startsAt,
    ends_at: flags.endsAt,
  };
  if (flags.rampFrom !== undefined || flags.rampOver !== undefined) s.ramp = { from_cps: num(flags.rampFrom), over_s: seconds(flags.rampOver, '--ramp-over') };
  const retry = { busy: seconds(flags.retryBusy, '--retry-busy'), no_answer: seconds(flags.retryNoAnswer, '--retry-no-answer'), failed: seconds(flags.retryFailed, '--retry-failed') };
  if (Object.values(retry).some((v) => v !== undefined)) s.retry_delays_s = Object.fromEntries(Object.entries(retry).filter(([, v]) => v !== undefined));
  if (flags.window !== undefined) s.window = { hours: flags.window, days: flags.days, time_zone: flags.timeZone };
  if (flags.webhookUrl !== undefined) s.webhook = { url: flags.webhookUrl, secret: flags.webhookSecret };
  const given = Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined));
  return { ...base, ...JSON.parse(JSON.stringify(given)) };
}

function settingOptions(command: Command): Command {
  return command
    .option('--name <name>', 'a name for people')
    .option('--profile <name>', 'agent profile of calls that name none')
    .option('--trunk <id>', 'outbound SIP trunk (and so caller id); SIP_OUTBOUND_TRUNK_ID when absent')
    .option('--cps <n>', 'call starts per second of this campaign, inside DIAL_CPS')
    .option('--max-active <n>', 'calls in progress of this campaign, inside DIAL_MAX_ACTIVE_CALLS')
    .option('--ramp-from <cps>', 'ramp: the rate at the start (rises evenly to --cps)')
    .option('--ramp-over <duration>', 'ramp: how long it takes, e.g. 10m')
    .option('--max-attempts <n>', 'attempts per call (at most DIAL_MAX_ATTEMPTS / the job\'s own)')
    .option('--retry-busy <duration>', 'first retry delay after busy')
    .option('--retry-no-answer <duration>', 'first retry delay after no answer')
    .option('--retry-failed <duration>', 'first retry delay after a failure')
    .option('--window <hours>', 'calling hours of calls that carry none, e.g. 09:00-20:00')
    .option('--days <days>', 'weekdays of the window, e.g. mon-fri')
    .option('--time-zone <zone>', 'time zone of the window (DIAL_TIME_ZONE when absent)')
    .option('--region <CC>', 'country of numbers given without a country code')
    .option('--starts-at <iso>', 'no call rings before this (ISO 8601 with offset)')
    .option('--ends-at <iso>', 'calls not placed by then end as expired')
    .option('--webhook-url <url>', 'webhook of this campaign (stored; see README)')
    .option('--webhook-secret <secret>', 'its signing secret')
    .option('--settings <json>', 'settings as a JSON object (the API\'s body); flags override it');
}

/** A campaign as a person reads it (or as JSON with --json); a webhook secret is never shown back. */
function print(stored: CampaignView, json: boolean): void {
  const view = withSecretHidden(stored);
  if (json) {
    process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
    return;
  }
  const { id, status, state: _state, created_at, updated_at, ramp_started_at: _ramp, paused: _paused, ...settings } = view;
  const lines = [`campaign ${id}: ${status}`, `  created ${new Date(created_at).toISOString()}, updated ${new Date(updated_at).toISOString()}`];
  for (const [name, value] of Object.entries(settings)) {
    lines.push(`  ${name}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Registers `campaign` and its subcommands. */
export function registerCampaignObjectCommands(program: Command): void {
  const campaign = program
    .command('campaign')
    .description('campaign objects: settings (caps, ramp, retries, window, dates) consumers apply to the campaign\'s calls');

  settingOptions(campaign.command('create').argument('<id>', 'campaign id (letters, digits, _ . -)').description('create a campaign'))
    .option('--json', 'print the campaign as JSON')
    .action(
      action(async (id: string, flags: SettingFlags & { json?: boolean }) => {
        const view = await withCampaigns((store) => store.create({ ...settingsFrom(flags), id }));
        print(view, flags.json === true);
      }),
    );

  campaign
    .command('list')
    .description('defined campaigns with their status (campaigns used without being defined are listed by `dialer campaigns`)')
    .option('--archived', 'include archived campaigns')
    .option('--json', 'JSON lines')
    .action(
      action(async (flags: { archived?: boolean; json?: boolean }) => {
        const views = await withCampaigns((store) => store.list({ archived: flags.archived }));
        for (const v of views) {
          process.stdout.write(flags.json ? `${JSON.stringify(v)}\n` : `${v.id}\t${v.status}\t${v.name ?? ''}\n`);
        }
      }),
    );

  campaign
    .command('show')
    .argument('<id>')
    .option('--json', 'print the campaign as JSON')
    .action(action(async (id: string, flags: { json?: boolean }) => print(await withCampaigns((store) => store.show(id)), flags.json === true)));

  settingOptions(campaign.command('update').argument('<id>').description('change settings while the campaign runs (the next call any consumer takes follows them)'))
    .option('--unset <names...>', 'settings to remove (back to the global setting), e.g. cps ramp')
    .option('--json', 'print the campaign as JSON')
    .action(
      action(async (id: string, flags: SettingFlags & { unset?: string[]; json?: boolean }) => {
        const change = { ...settingsFrom(flags), ...(flags.unset ? { unset: flags.unset } : {}) };
        print(await withCampaigns((store) => store.update(id, change)), flags.json === true);
      }),
    );

  campaign
    .command('pause')
    .argument('<id>')
    .description('its calls not ringing yet wait (no attempt spent); calls in progress carry on')
    .action(
      action(async (id: string) => {
        const changed = await withCampaigns((store) => store.pause(id));
        process.stdout.write(changed ? `paused ${id}\n` : `${id} was already paused\n`);
      }),
    );
  campaign
    .command('resume')
    .argument('<id>')
    .description('held calls are dialed again at once; the ramp starts over')
    .action(
      action(async (id: string) => {
        const { wasPaused, released } = await withCampaigns((store) => store.resume(id));
        process.stdout.write(wasPaused ? `resumed ${id}: ${released} held calls released\n` : `${id} was not paused\n`);
      }),
    );
  campaign
    .command('cancel')
    .argument('<id>')
    .description('cancel its calls not ringing yet (they end canceled); calls enqueued later end skipped')
    .action(
      action(async (id: string) => {
        const summary = await withCampaigns((store) => store.cancel(id));
        process.stdout.write(`canceled ${summary.canceled.length}, in flight (not canceled) ${summary.inFlight.length}, already ended ${summary.alreadyEnded.length}\n`);
      }),
    );
  campaign
    .command('archive')
    .argument('<id>')
    .description('hide an ended, expired or canceled campaign from `campaign list` (its report stays)')
    .action(
      action(async (id: string) => {
        const view = await withCampaigns((store) => store.archive(id));
        process.stdout.write(`archived ${view.id} (${campaignStatus(view, Date.now())})\n`);
      }),
    );
}
