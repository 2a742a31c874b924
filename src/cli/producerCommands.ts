import { stat } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import type { CountryCode } from 'libphonenumber-js';
import { isTimeZone, parseCallWindow, type CallWindow } from '../core/callWindow.js';
import { DEFAULT_TIME_ZONE, type DialerConfig } from '../core/config.js';
import { errorCode, errorMessage, InvalidInputError } from '../core/errors.js';
import { campaignRegions } from '../campaigns/campaignRegion.js';
import { formatPhoneNumber, parsePhoneNumber, parseRegion, REGION_SOURCES } from '../core/phone.js';
import { DEFAULT_CAMPAIGN_ID, callMetadataSchema, idSchema, type CallMetadata } from '../core/queues.js';
import { resolveSchedule, systemClock, type Clock } from '../core/time.js';
import { CallProducer, MAX_CALL_PRIORITY, type CallRequest } from '../producer/enqueueCalls.js';
import { parseDelimiter, parseEncoding } from '../producer/csvDialect.js';
// the CSV reader and the progress bar are loaded by `import` only, so `enqueue` starts without them
import type { ImportProgress, ImportSummary } from '../producer/importCsv.js';
import { loadProfileCatalog, requireKnownProfile } from '../agent/profiles.js';
import { EXIT_INVALID_INPUT, EXIT_PARTIAL, action, cliContext, withRedis } from './cliContext.js';
import { refuseReservedKeys } from './jsonFlags.js';

interface EnqueueFlags extends WindowFlags {
  campaign?: string;
  metadata?: string;
  key?: string;
  at?: string;
  delay?: string;
  expiresAt?: string;
  profile?: string;
}

/** What `enqueue` falls back to when a flag is not given (read lazily: the settings are loaded only when needed). */
export interface EnqueueDefaults {
  /** DIAL_TIME_ZONE: the zone of `--window` without `--time-zone`. */
  timeZone?: () => string;
  /** DIAL_DEFAULT_REGION: the country of a number written without a country code. */
  region?: () => CountryCode | undefined;
}

/** `--window 09:00-20:00 [--time-zone America/New_York] [--days mon-fri]` and `--priority N`, for enqueue and import. */
interface WindowFlags {
  /** `--region US`: the country of numbers written without a country code. */
  region?: string;
  window?: string;
  timeZone?: string;
  days?: string;
  priority?: string;
}

interface ImportFlags extends WindowFlags {
  campaign: string;
  profile?: string;
  at?: string;
  delay?: string;
  expiresAt?: string;
  delimiter?: string;
  encoding?: string;
}

function parseCampaign(value: string | undefined): string {
  const parsed = idSchema.safeParse(value ?? DEFAULT_CAMPAIGN_ID);
  if (!parsed.success) throw new InvalidInputError(`--campaign: ${parsed.error.issues[0]?.message ?? 'invalid id'}`);
  return parsed.data;
}

function parseMetadata(text: string | undefined): CallMetadata | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidInputError(`--metadata: not valid JSON (${errorMessage(err).replace(/\s+/g, ' ')})`);
  }
  refuseReservedKeys('--metadata', text, value);
  const parsed = callMetadataSchema.safeParse(value);
  if (!parsed.success || Array.isArray(value)) {
    throw new InvalidInputError('--metadata: expected a flat JSON object of string, number, boolean or null values');
  }
  return parsed.data;
}

/** `--priority N`: 0 (default, dialed first) to MAX_CALL_PRIORITY. */
export function priorityFromFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > MAX_CALL_PRIORITY) {
    throw new InvalidInputError(`--priority: expected a whole number from 0 (dialed first) to ${MAX_CALL_PRIORITY}, got "${value}"`);
  }
  return n;
}

/**
 * The calling window of `--window`/`--time-zone`/`--days`; the zone defaults to DIAL_TIME_ZONE (read only if needed).
 * `--time-zone` alone is refused unless `zoneHasOtherUse` (it also places offset-less `--at`/`--expires-at` times).
 */
export function windowFromFlags(flags: WindowFlags, defaultTimeZone: () => string, zoneHasOtherUse = false): CallWindow | undefined {
  if (flags.window === undefined) {
    if (flags.days !== undefined) throw new InvalidInputError('--days needs --window (e.g. --window 09:00-20:00)');
    if (flags.timeZone !== undefined && !zoneHasOtherUse) {
      throw new InvalidInputError('--time-zone needs --window (e.g. --window 09:00-20:00), or an --at/--expires-at without an offset');
    }
    if (flags.timeZone !== undefined && !isTimeZone(flags.timeZone)) throw new InvalidInputError(`--time-zone: "${flags.timeZone}" is not an IANA time zone such as America/New_York`);
    return undefined;
  }
  try {
    return parseCallWindow(flags.window, flags.timeZone ?? defaultTimeZone(), flags.days);
  } catch (err) {
    if (err instanceof InvalidInputError) throw new InvalidInputError(`--window: ${err.message}`);
    throw err;
  }
}

/** Turns the `enqueue` flags into a call request; every reason to refuse is found here, before Redis is touched. */
export function enqueueRequest(number: string, flags: EnqueueFlags, now: number, defaults: EnqueueDefaults = {}): CallRequest {
  const defaultTimeZone = defaults.timeZone ?? (() => DEFAULT_TIME_ZONE);
  const region = flags.region === undefined ? defaults.region?.() : parseRegion(flags.region, '--region');
  const phoneNumber = formatPhoneNumber(parsePhoneNumber(number, region, REGION_SOURCES.cli));
  const campaignId = parseCampaign(flags.campaign);
  const metadata = parseMetadata(flags.metadata);
  if (flags.key !== undefined && (flags.key === '' || flags.key.length > 512)) {
    throw new InvalidInputError('--key: expected 1 to 512 characters');
  }
  const hasWallClockTime = flags.at !== undefined || flags.expiresAt !== undefined;
  const callWindow = windowFromFlags(flags, defaultTimeZone, hasWallClockTime);
  // offset-less --at/--expires-at are wall-clock times in --time-zone (else DIAL_TIME_ZONE)
  const { notBefore, expiresAt } = resolveSchedule(flags, now, hasWallClockTime ? (flags.timeZone ?? defaultTimeZone()) : DEFAULT_TIME_ZONE);
  if (flags.profile !== undefined && flags.profile === '') throw new InvalidInputError('--profile: empty name');
  const priority = priorityFromFlag(flags.priority);
  return {
    phoneNumber,
    campaignId,
    metadata,
    key: flags.key,
    notBefore,
    expiresAt,
    agentProfile: flags.profile,
    callWindow,
    priority,
  };
}

/** The `default_region` of a campaign object (undefined for an implicit campaign, or one without it). */
async function defaultRegionOf(campaignId: string): Promise<CountryCode | undefined> {
  const { config } = cliContext();
  return withRedis(config, async (redis) => (await campaignRegions(redis, config.queuePrefix, [campaignId])).get(campaignId));
}

/** Runs `body` with a producer on a ready connection, and closes both whatever happens. */
async function withProducer<T>(config: DialerConfig, clock: Clock, body: (producer: CallProducer) => Promise<T>): Promise<T> {
  return withRedis(config, async (connection) => {
    const producer = new CallProducer({
      connection,
      prefix: config.queuePrefix,
      maxAttempts: config.dial.maxAttempts,
      clock,
      defaultRegion: config.dial.defaultRegion,
      regionSources: REGION_SOURCES.cli,
    });
    try {
      return await body(producer);
    } finally {
      await producer.close();
    }
  });
}

/**
 * The exit code of an import: 0 when no row was rejected (duplicates are fine), EXIT_PARTIAL when some rows were
 * enqueued (or already were) and others rejected, EXIT_INVALID_INPUT when every row was rejected.
 */
export function importExitCode(summary: ImportSummary): number {
  if (summary.rejected.length === 0) return 0;
  return summary.enqueued + summary.duplicates > 0 ? EXIT_PARTIAL : EXIT_INVALID_INPUT;
}

async function progressBar(totalBytes: number): Promise<{ update(p: ImportProgress): void; stop(): void } | undefined> {
  if (!process.stderr.isTTY) return undefined;
  const { SingleBar } = await import('cli-progress');
  const bar = new SingleBar({
    format: 'importing [{bar}] {percentage}% | {rows} rows | {enqueued} enqueued, {duplicates} duplicates, {rejected} rejected',
    stream: process.stderr,
    hideCursor: true,
  });
  bar.start(Math.max(totalBytes, 1), 0, { rows: 0, enqueued: 0, duplicates: 0, rejected: 0 });
  return {
    update: (p) => bar.update(Math.min(p.bytes, Math.max(totalBytes, 1)), { ...p }),
    stop: () => bar.stop(),
  };
}

/**
 * How far V8 lets the heap grow past what was live at the last full collection (percent; V8's own choice is up to
 * 300 % for a busy process). An import streams (its live heap stays about 30 MB at 10,000 or 100,000 rows), but each
 * batch in flight outlives a couple of scavenges, and with V8's default growth the dead batches piled up to 130 MB of
 * heap on a 100,000-row file, 2× a 10,000-row import's. At 100 % peak RSS stays within 5 % of the 10,000-row run's
 * for about 8 % more CPU (bench:import). Set for the `import` command only; the V8 flag is read at each collection.
 */
const IMPORT_HEAP_GROWING_PERCENT = 100;

/** The import summary as printed on stdout. */
export function formatImportSummary(file: string, summary: ImportSummary): string {
  const lines = [
    `imported ${file} into campaign ${summary.campaignId}: ${summary.rows} rows`,
    `enqueued: ${summary.enqueued}`,
    `duplicates: ${summary.duplicates}`,
    `rejected: ${summary.rejected.length}`,
    ...summary.rejected.map((r) => `  line ${r.line}: ${r.reason}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** `enqueue <number>` and `import <file.csv>`. */
export function registerProducerCommands(program: Command): void {
  program
    .command('enqueue')
    .description('enqueue one call; prints its call id')
    .argument('<number>', 'phone number: +14155550123, or national with --region; an extension goes last (x136)')
    .option('--region <country>', 'country of a number without country code, e.g. US (default DIAL_DEFAULT_REGION)')
    .option('--campaign <id>', `campaign id (default "${DEFAULT_CAMPAIGN_ID}")`)
    .option('--metadata <json>', 'call metadata: a flat JSON object, e.g. \'{"first_name":"Ada"}\'')
    .option('--key <idempotency-key>', 'the same key within a campaign enqueues once (prints the same id)')
    .option('--at <time>', 'dial no earlier than this: 2030-01-31T09:30:00Z, or without offset in --time-zone; within 90 days, not in the past')
    .option('--delay <duration>', 'dial after this long: 90 (seconds), 90s, 5m, 1h30m, 2d or PT5M; at most 90 days')
    .option('--expires-at <time>', 'give up (outcome "expired") if not dialed by then; same forms as --at')
    .option('--profile <name>', 'agent profile to use for the call')
    .option('--window <HH:MM-HH:MM>', "ring only between these local hours, e.g. 09:00-20:00 (the callee's time)")
    .option('--time-zone <iana>', 'time zone of --window and of --at/--expires-at without offset, e.g. America/New_York (default DIAL_TIME_ZONE)')
    .option('--days <weekdays>', 'weekdays of --window, e.g. mon-fri (default every day)')
    .option('--priority <n>', `0 (default) is dialed first; 1-${MAX_CALL_PRIORITY} wait behind every 0, lower first`)
    .action(
      action(async (number: string, flags: EnqueueFlags) => {
        const now = Date.now();
        // a national number without --region is read in its campaign's default_region, else DIAL_DEFAULT_REGION
        const campaignRegion = flags.region === undefined && !number.trimStart().startsWith('+') ? await defaultRegionOf(flags.campaign ?? DEFAULT_CAMPAIGN_ID) : undefined;
        const request = enqueueRequest(number, flags, now, {
          timeZone: () => cliContext().config.dial.timeZone,
          region: () => campaignRegion ?? cliContext().config.dial.defaultRegion,
        });
        const { config, logger } = cliContext();
        // A profile the agent lacks would ring the phone only to hang up on the callee: refused before Redis is touched.
        if (request.agentProfile !== undefined) requireKnownProfile(await loadProfileCatalog(), request.agentProfile);
        // --at and --delay are instants by now (--delay counted from the command): the producer's delay is taken from
        // the wall clock as it adds the job, so BullMQ releases it at that instant however long start-up took
        const { callId, duplicate } = await withProducer(config, systemClock, (producer) => producer.enqueueCall(request));
        logger.debug({ callId, campaignId: request.campaignId, duplicate }, duplicate ? 'call already enqueued' : 'call enqueued');
        process.stdout.write(`${callId}\n`);
      }),
    );

  program
    .command('import')
    .description('enqueue every row of a CSV file (column phone_number required; other columns become metadata)')
    .argument('<file>', 'CSV file with a header line')
    .requiredOption('--campaign <id>', 'campaign id')
    .option('--profile <name>', 'agent profile to use for every call')
    .option('--region <country>', 'country of numbers without country code, e.g. US, for rows without a region/country cell (default DIAL_DEFAULT_REGION)')
    .option('--window <HH:MM-HH:MM>', "ring only between these local hours, e.g. 09:00-20:00; a timezone column sets each row's zone")
    .option('--time-zone <iana>', 'time zone of --window and of times without offset, for rows without a timezone cell (default DIAL_TIME_ZONE)')
    .option('--at <time>', 'dial no earlier than this (rows with an at or delay cell use theirs); forms as for enqueue')
    .option('--delay <duration>', 'dial after this long: 90 (seconds), 90s, 5m, 1h30m, 2d or PT5M (rows may carry their own)')
    .option('--expires-at <time>', 'give up if not dialed by then (rows with an expires_at cell use theirs)')
    .option('--delimiter <char>', 'field delimiter: , ; | or tab (default: detected from the header line)')
    .option('--encoding <name>', 'file encoding: utf-8 (default; UTF-16 is recognised by its BOM) or windows-1252 for files Excel saved as "CSV"')
    .option('--days <weekdays>', 'weekdays of --window, e.g. mon-fri (default every day)')
    .option('--priority <n>', `e.g. 10 for a bulk campaign: its calls wait behind every priority-0 call (1-${MAX_CALL_PRIORITY})`)
    .action(
      action(async (file: string, flags: ImportFlags) => {
        const campaignId = parseCampaign(flags.campaign);
        if (flags.profile === '') throw new InvalidInputError('--profile: empty name');
        // --time-zone also places the rows' offset-less at/expires_at times, so it may come without --window
        const callWindow = windowFromFlags(flags, () => cliContext().config.dial.timeZone, true);
        const priority = priorityFromFlag(flags.priority);
        const region = flags.region === undefined ? undefined : parseRegion(flags.region, '--region');
        const delimiter = flags.delimiter === undefined ? undefined : parseDelimiter(flags.delimiter);
        const encoding = flags.encoding === undefined ? undefined : parseEncoding(flags.encoding);
        const now = Date.now();
        const timeZone = flags.timeZone ?? cliContext().config.dial.timeZone;
        const schedule = { at: flags.at, delay: flags.delay, expiresAt: flags.expiresAt };
        resolveSchedule(schedule, now, timeZone); // a bad flag is refused once, not on every row
        // a missing file is the caller's input (exit 2) even when Redis is down; importCsv checks again as it opens
        const size = await stat(file).then(
          (s) => s.size,
          (err: unknown) => {
            throw new InvalidInputError(`cannot read ${file}: ${errorCode(err) ?? errorMessage(err)}`);
          },
        );
        const { config, logger } = cliContext();
        // every row would carry it: an unknown profile refuses the whole file, nothing enqueued
        if (flags.profile !== undefined) requireKnownProfile(await loadProfileCatalog(), flags.profile);
        setFlagsFromString(`--heap-growing-percent=${IMPORT_HEAP_GROWING_PERCENT}`);
        const summary = await withProducer(config, systemClock, async (producer) => {
          const { importCsv } = await import('../producer/importCsv.js');
          const bar = await progressBar(size);
          try {
            return await importCsv(file, {
              campaignId,
              agentProfile: flags.profile,
              callWindow,
              priority,
              region,
              schedule,
              timeZone,
              now,
              delimiter,
              encoding,
              producer,
              onProgress: (p) => bar?.update(p),
            });
          } finally {
            bar?.stop();
          }
        });
        logger.debug({ campaignId, rows: summary.rows, enqueued: summary.enqueued }, 'import finished');
        process.stdout.write(formatImportSummary(file, summary));
        process.exitCode = importExitCode(summary);
      }),
    );
}
