import { campaignCallsQueue } from '../core/callQueues.js';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CampaignStore, type CampaignView } from '../campaigns/campaignStore.js';
import { CallStore, type CallRecord } from '../core/callStore.js';
import { openCallTimes, type CallTimes } from '../core/callTimes.js';
import type { DialerConfig } from '../core/config.js';
import { errorCode, errorMessage, InvalidInputError } from '../core/errors.js';
import { idSchema } from '../core/queues.js';
import type { RedisClient } from '../core/redisClient.js';
import { DURATION_FORMS, HOUR, parseDuration, systemClock } from '../core/time.js';
import { campaignCsv, campaignReport, formatCampaignReport } from '../results/campaignReport.js';
import { shownCampaignSettings } from '../results/report/campaignSettings.js';
import { MAX_HTML_ROWS, renderHtmlReport, type NumberDisplay } from '../results/report/htmlReport.js';
import { WATCH_REFRESH_MS, WatchReader, runWatch } from '../results/report/watchView.js';
import { requireCampaign } from './campaignNames.js';
import { action, cliContext, withRedis } from './cliContext.js';

/** Call lines in the table view; `--json` and `--csv` list every call. */
const TABLE_CALL_LINES = 50;
/** `--refresh` bounds: faster than this only adds Redis reads nobody can follow; slower is no longer a live view. */
const MIN_WATCH_REFRESH_MS = 100;
const MAX_WATCH_REFRESH_MS = HOUR;

/**
 * `--refresh` as milliseconds: WATCH_REFRESH_MS (a second) when not given, else a duration within the bounds above.
 * Throws InvalidInputError naming the flag.
 */
export function watchRefreshMs(text: string | undefined): number {
  if (text === undefined) return WATCH_REFRESH_MS;
  const ms = parseDuration(text);
  if (ms === undefined) throw new InvalidInputError(`--refresh: expected a duration such as ${DURATION_FORMS}, got "${text}"`);
  if (ms < MIN_WATCH_REFRESH_MS || ms > MAX_WATCH_REFRESH_MS) {
    throw new InvalidInputError(`--refresh: "${text}" is outside ${MIN_WATCH_REFRESH_MS}ms to ${MAX_WATCH_REFRESH_MS / HOUR}h`);
  }
  return ms;
}

/** `report --campaign ID [--json | --csv | --html FILE [--full-numbers] | --watch]`. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('show a campaign: totals by outcome, pending calls, and each call; --json and --csv list every call in full, --html writes a page for the team, --watch follows it live')
    .requiredOption('--campaign <id>', 'campaign id')
    .option('--json', 'one JSON object {campaign, total, pending, byOutcome, calls: [every call in full]}')
    .option('--csv', 'one row per call: number, extension, key, outcome, reason, attempts, SIP status, times, duration, the metadata columns, survey answers')
    .option('--html <file>', 'write one self-contained page (figures, outcomes over time, settings, searchable call table); numbers masked')
    .option('--full-numbers', 'with --html: write phone numbers whole instead of masked (+1 ••••••0123)')
    .option('--watch', 'follow the campaign live (redrawn every second) until every call has ended, or Ctrl-C')
    .option('--refresh <duration>', 'with --watch: redraw this often instead of every second (250ms, 2s, 1m)')
    .action(
      action(async (opts: { campaign: string; json?: boolean; csv?: boolean; html?: string; fullNumbers?: boolean; watch?: boolean; refresh?: string }) => {
        const campaign = idSchema.safeParse(opts.campaign);
        if (!campaign.success) throw new InvalidInputError(`--campaign: ${campaign.error.issues[0]?.message ?? 'invalid'}`);
        const modes = (['json', 'csv', 'html', 'watch'] as const).filter((m) => opts[m] !== undefined && opts[m] !== false);
        if (modes.length > 1) throw new InvalidInputError(`use one of --json, --csv, --html, --watch, not ${modes.map((m) => `--${m}`).join(' and ')}`);
        if (opts.fullNumbers && opts.html === undefined) throw new InvalidInputError('--full-numbers goes with --html');
        if (opts.refresh !== undefined && !opts.watch) throw new InvalidInputError('--refresh goes with --watch');
        const refreshMs = watchRefreshMs(opts.refresh);
        const campaignId = campaign.data;
        const { config } = cliContext();
        if (opts.watch) {
          await watchCampaign(config, campaignId, refreshMs);
          return;
        }
        const output = await withRedis(config, async (redis) => {
          const store = new CallStore(redis, config.queuePrefix, systemClock);
          const campaigns = new CampaignStore(redis, config.queuePrefix, systemClock);
          // a defined campaign is known even before its first call
          const view = (await campaigns.get(campaignId)) ? await campaigns.show(campaignId) : undefined;
          if (!view) await requireCampaign(redis, config.queuePrefix, campaignId);
          if (opts.html !== undefined) return writeHtml(store, campaignId, view, opts.html, opts.fullNumbers ? 'full' : 'masked', config.dial.timeZone);
          const full = opts.json === true || opts.csv === true;
          // the table shows the first lines only: reading 100,000 records for it would turn milliseconds into seconds
          const [counters, records] = await Promise.all([store.counters(campaignId), store.list(campaignId, full ? undefined : TABLE_CALL_LINES)]);
          // --json gives each call not ended its due time and expiry (dueAt, expiresAt), as `dialer call --json` does;
          // read beside the keys, so their round trips overlap
          const [keys, times] = await Promise.all([
            full ? store.idempotencyKeys(campaignId, records.map((r) => r.callId)) : new Map<string, string>(),
            opts.json ? waitingTimes(redis, config.queuePrefix, campaignId, records) : new Map<string, CallTimes>(),
          ]);
          const report = campaignReport(campaignId, counters, records, keys, times);
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

/** When the calls of `records` not ended yet come up and expire, from their jobs on a `calls` queue opened for it. */
async function waitingTimes(redis: RedisClient, prefix: string, campaignId: string, records: readonly CallRecord[]): Promise<Map<string, CallTimes>> {
  if (records.every((r) => r.state === 'terminal')) return new Map(); // no queue opened for nothing to read
  const queue = campaignCallsQueue(redis, prefix, campaignId);
  try {
    return await openCallTimes(redis, queue, records);
  } finally {
    await queue.close();
  }
}

/** Writes the HTML page (every record read: the figures need them) and says where, with how many calls. */
async function writeHtml(store: CallStore, campaignId: string, view: CampaignView | undefined, file: string, numbers: NumberDisplay, timeZone: string): Promise<string> {
  const [counters, records, paused] = await Promise.all([store.counters(campaignId), store.list(campaignId), store.isPaused(campaignId)]);
  const keys = await store.idempotencyKeys(campaignId, records.map((r) => r.callId));
  const html = renderHtmlReport({ campaignId, counters, records, keys, campaign: view, paused, generatedAt: systemClock.now(), timeZone, numbers });
  const path = resolve(file);
  try {
    await writeFile(path, html, 'utf8');
  } catch (err) {
    // a path the user gave that cannot be written is their input to fix (exit 2), not a bug of ours
    throw new InvalidInputError(`--html ${file}: cannot write it (${errorCode(err) ?? errorMessage(err)}): give a file in a folder that exists and you may write to`);
  }
  const listed = Math.min(records.length, MAX_HTML_ROWS);
  return `wrote ${path}: ${counters.total} calls, ${listed} listed, numbers ${numbers === 'full' ? 'in full' : 'masked'}\n`;
}

/**
 * `--watch`: redraws every `refreshMs` (`--refresh`, a second by default) until every call has ended or Ctrl-C /
 * SIGTERM, then restores the terminal. On a terminal the frame is redrawn in place; piped, frames are printed one
 * after another.
 */
async function watchCampaign(config: DialerConfig, campaignId: string, refreshMs: number): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await withRedis(config, async (redis) => {
      const store = new CallStore(redis, config.queuePrefix, systemClock);
      const campaigns = new CampaignStore(redis, config.queuePrefix, systemClock);
      await requireCampaign(redis, config.queuePrefix, campaignId);
      // the outbound cap shown is the one the consumers published, not this shell's DIAL_MAX_ACTIVE_CALLS
      const reader = new WatchReader(redis, store, campaigns, campaignId, { prefix: config.queuePrefix, timeZone: config.dial.timeZone }, systemClock);
      const output = { isTTY: process.stdout.isTTY === true, write: (text: string) => void process.stdout.write(text) };
      await runWatch({ read: () => reader.read(), output, signal: stop.signal, timeZone: config.dial.timeZone, refreshMs });
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The campaign object's status and settings, above the table (a webhook secret is never shown). */
export function campaignHeader(view: CampaignView): string {
  const shown = shownCampaignSettings(view).map(([name, value]) => `${name} ${value}`);
  return `campaign ${view.id}: ${view.status}${shown.length ? ` (${shown.join(', ')})` : ' (global settings)'}`;
}
