import { open, type FileHandle } from 'node:fs/promises';
import { Transform, pipeline } from 'node:stream';
import { parse, type CsvError, type Info } from 'csv-parse';
import { isTimeZone, type CallWindow } from '../core/callWindow.js';
import { DEFAULT_TIME_ZONE } from '../core/config.js';
import { errorCode, errorMessage, InvalidInputError } from '../core/errors.js';
import { idSchema } from '../core/queues.js';
import { resolveSchedule, type ScheduleInput } from '../core/time.js';
import { detectCsvDialect, type CsvEncoding } from './csvDialect.js';
import { InFlight } from './inFlight.js';
import { CallProducer, ENQUEUE_CHUNK_SIZE, type CallRequest, type EnqueueOptions, type EnqueueSummary } from './enqueueCalls.js';

/** The column that holds the number to call; every other column (but `key`) becomes call metadata. */
export const PHONE_NUMBER_COLUMN = 'phone_number';
/** Optional column with the row's idempotency key; rows without one are keyed by their normalised number. */
export const KEY_COLUMN = 'key';
/** Optional column with the callee's IANA time zone: the calling window (`--window`) is local to it. */
export const TIMEZONE_COLUMN = 'timezone';
/** Optional columns with the country (ISO 3166-1 alpha-2, e.g. US) of a number written without a country code. */
export const REGION_COLUMNS = ['region', 'country'] as const;
/** Optional columns with the row's own `--at`, `--delay` and `--expires-at` (same forms; they replace the flags). */
export const SCHEDULE_COLUMNS = { at: 'at', delay: 'delay', expiresAt: 'expires_at' } as const;

/** Header spellings of the columns above, once case, spaces and hyphens are set aside. */
const COLUMN_ALIASES: Record<string, string> = { time_zone: TIMEZONE_COLUMN, expiresat: SCHEDULE_COLUMNS.expiresAt };
const RESERVED_COLUMNS: ReadonlySet<string> = new Set([
  PHONE_NUMBER_COLUMN,
  KEY_COLUMN,
  TIMEZONE_COLUMN,
  ...REGION_COLUMNS,
  ...Object.values(SCHEDULE_COLUMNS),
]);

/**
 * The name a header cell is matched by: case, surrounding space and runs of spaces, hyphens or dots set aside
 * (`Phone Number`, `Phone_Number`, `PHONE-NUMBER` are all `phone_number`).
 */
export function canonicalColumn(header: string): string {
  const normalized = header.trim().toLowerCase().replace(/[\s.-]+/g, '_');
  return COLUMN_ALIASES[normalized] ?? normalized;
}

/**
 * Batches (of ENQUEUE_CHUNK_SIZE rows) handed to the producer at once: parsing the next batch overlaps Redis working on
 * the previous one; as many as the producer keeps chunks in flight, so memory stays that of a few batches.
 */
const BATCHES_IN_FLIGHT = 2;

export interface RejectedRow {
  /** Line of the file where the row starts (the header is line 1). */
  line: number;
  reason: string;
}

export interface ImportSummary {
  campaignId: string;
  /** Data rows read (rejected rows included). */
  rows: number;
  enqueued: number;
  /** Rows whose key (or number) was already enqueued in this campaign, by this file or before. */
  duplicates: number;
  /** In line order. */
  rejected: RejectedRow[];
}

export interface ImportProgress {
  rows: number;
  bytes: number;
  totalBytes: number;
  enqueued: number;
  duplicates: number;
  rejected: number;
}

export interface ImportCsvOptions {
  campaignId: string;
  /** Agent profile name for every call of the file. */
  agentProfile?: string;
  /** Calling window for every call; a row's `timezone` cell, when set, replaces its time zone. */
  callWindow?: CallWindow;
  /** Priority of every call (see CallRequest.priority). */
  priority?: number;
  /** Country of numbers written without a country code, for rows without a region/country cell (`--region`). */
  region?: string;
  /** When calls may start and expire, for rows without `at`/`delay`/`expires_at` cells (`--at`, `--delay`, `--expires-at`). */
  schedule?: ScheduleInput;
  /** Zone of offset-less `at`/`expires_at` times for rows without a timezone cell (default UTC; the CLI gives DIAL_TIME_ZONE). */
  timeZone?: string;
  /** "Now" for delays and past-time checks (default: the wall clock when the import starts). */
  now?: number;
  /** The field delimiter (default: detected from the header line). */
  delimiter?: string;
  /** The file's encoding (default: UTF-16 with its byte-order mark, else UTF-8, checked before anything is enqueued). */
  encoding?: CsvEncoding;
  /** Enqueue through this open producer (left open); otherwise give `enqueue` and one is made and closed here. */
  producer?: CallProducer;
  enqueue?: EnqueueOptions;
  /** Called as batches finish, with rows and bytes handled so far. */
  onProgress?: (progress: ImportProgress) => void;
}

interface Row {
  line: number;
  request: CallRequest;
}

interface ParsedRecord {
  record: Record<string, string | undefined>;
  raw: string;
  info: Info;
  /** Line of the file where the record starts (LineCounter). */
  line: number;
}

/** A line break as editors count lines: CRLF (Windows, Excel), LF, or a lone CR. */
const LINE_BREAK = /\r\n|\r|\n/g;
const CRLF = /\r\n/g;

/**
 * Where each record starts, from csv-parse's own count (`info.lines`, the line a record ends on) and its raw text.
 * csv-parse 6 counts each CRLF inside a quoted field as two lines (it counts a line after every CR or LF not
 * directly followed by another one it has counted, and a CRLF inside quotes is not a record delimiter it skips
 * whole), so every record after an Excel cell holding a line break would be reported lines too far. This keeps the
 * running total of those extra counts. Records (and skipped ones) must be passed in the order csv-parse reads them.
 */
class LineCounter {
  private overcounted = 0;

  /** The line `raw` (a record's raw text, blank lines before it included) starts on, given csv-parse's end line. */
  startOf(endLine: number, raw: string): number {
    const body = raw.replace(/^[\r\n]+/, '').replace(/(\r\n|\r|\n)$/, '');
    this.overcounted += body.match(CRLF)?.length ?? 0;
    return endLine - this.overcounted - (body.match(LINE_BREAK)?.length ?? 0);
  }
}

function csvErrorReason(err: CsvError, columns: number): string {
  switch (err.code) {
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH':
    case 'CSV_RECORD_INCONSISTENT_COLUMNS': {
      const fields = Array.isArray(err.record) ? `${err.record.length} fields` : 'more fields';
      return `malformed CSV row: ${fields}, the header has ${columns}`;
    }
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'malformed CSV row: a quote opened here is never closed';
    default:
      return `malformed CSV row: ${err.message.replace(/\s+at line \d+.*$/s, '')}`;
  }
}

const cell = (record: Record<string, string | undefined>, column: string) => record[column] || undefined;

/** The row's start and expiry: its own `at`/`delay` cells replace the flags' start, its `expires_at` the flags' expiry. */
function rowSchedule(record: Record<string, string | undefined>, flags: ScheduleInput): ScheduleInput {
  const at = cell(record, SCHEDULE_COLUMNS.at);
  const delay = cell(record, SCHEDULE_COLUMNS.delay);
  const start = at !== undefined || delay !== undefined ? { at, delay } : { at: flags.at, delay: flags.delay };
  return { ...start, expiresAt: cell(record, SCHEDULE_COLUMNS.expiresAt) ?? flags.expiresAt };
}

const SCHEDULE_COLUMN_NAMES = { at: SCHEDULE_COLUMNS.at, delay: SCHEDULE_COLUMNS.delay, expiresAt: SCHEDULE_COLUMNS.expiresAt };

function toRow(record: Record<string, string | undefined>, line: number, options: ImportCsvOptions, now: number): Row | RejectedRow {
  const phoneNumber = record[PHONE_NUMBER_COLUMN] ?? '';
  if (phoneNumber === '') return { line, reason: `${PHONE_NUMBER_COLUMN} is empty` };
  const metadata: Record<string, string> = {};
  for (const [column, value] of Object.entries(record)) {
    if (column === PHONE_NUMBER_COLUMN || column === KEY_COLUMN || column === '' || value === undefined || value === '') continue;
    metadata[column] = value;
  }
  const key = cell(record, KEY_COLUMN);
  const timeZone = cell(record, TIMEZONE_COLUMN);
  // checked whether or not a window or times use it: a bad cell rejects its row, named by its column
  if (timeZone !== undefined && !isTimeZone(timeZone)) {
    return { line, reason: `${TIMEZONE_COLUMN}: ${JSON.stringify(timeZone)} is not an IANA time zone (e.g. America/Los_Angeles)` };
  }
  const region = REGION_COLUMNS.map((c) => cell(record, c)).find((v) => v !== undefined) ?? options.region;
  const callWindow = options.callWindow && timeZone ? { ...options.callWindow, timeZone } : options.callWindow;
  const schedule = rowSchedule(record, options.schedule ?? {});
  let times: { notBefore?: number; expiresAt?: number } = {};
  if (schedule.at !== undefined || schedule.delay !== undefined || schedule.expiresAt !== undefined) {
    try {
      times = resolveSchedule(schedule, now, timeZone ?? options.timeZone ?? DEFAULT_TIME_ZONE, SCHEDULE_COLUMN_NAMES);
    } catch (err) {
      if (err instanceof InvalidInputError) return { line, reason: err.message };
      throw err;
    }
  }
  return {
    line,
    request: {
      phoneNumber,
      region,
      campaignId: options.campaignId,
      metadata,
      key,
      dedupeByNumber: key === undefined,
      agentProfile: options.agentProfile,
      callWindow,
      priority: options.priority,
      notBefore: times.notBefore,
      expiresAt: times.expiresAt,
    },
  };
}

/** Turns the bytes of a non-UTF-8 file into text for the parser (streaming; a character split across chunks is kept). */
function decoderStream(encoding: CsvEncoding): Transform {
  const decoder = new TextDecoder(encoding);
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      done(null, decoder.decode(chunk, { stream: true }));
    },
    flush(done) {
      done(null, decoder.decode());
    },
  });
}

function producerFor(options: ImportCsvOptions): { producer: CallProducer; owned: boolean } {
  if (options.producer) return { producer: options.producer, owned: false };
  if (options.enqueue) return { producer: new CallProducer(options.enqueue), owned: true };
  throw new Error('importCsv: pass a producer or enqueue options');
}

async function openCsv(filePath: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(filePath, 'r');
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error('not a regular file');
    return { handle, size: stat.size };
  } catch (err) {
    await handle?.close();
    const reason = errorCode(err) ?? errorMessage(err);
    throw new InvalidInputError(`cannot read ${filePath}: ${reason}`);
  }
}

/**
 * Streams a CSV file into the `calls` queue for one campaign. Column `phone_number` is required; column `key`
 * (optional) is the row's idempotency key, rows without one are keyed by their normalised number, so a number
 * appears once per campaign; every other non-empty cell becomes call metadata (a string). Bad rows are reported
 * with their line (header = line 1) and do not stop the import. Throws InvalidInputError when the file cannot be
 * read or has no `phone_number` column (before anything is enqueued).
 */
export async function importCsv(filePath: string, options: ImportCsvOptions): Promise<ImportSummary> {
  const campaign = idSchema.safeParse(options.campaignId);
  if (!campaign.success) throw new InvalidInputError(`campaign: ${campaign.error.issues[0]?.message ?? 'invalid id'}`);
  const { handle, size } = await openCsv(filePath);
  let dialect;
  try {
    dialect = await detectCsvDialect(filePath, { encoding: options.encoding, delimiter: options.delimiter });
  } catch (err) {
    await handle.close();
    throw err;
  }
  const now = options.now ?? Date.now();
  let producer: CallProducer;
  let owned: boolean;
  try {
    ({ producer, owned } = producerFor(options));
  } catch (err) {
    await handle.close();
    throw err;
  }
  const summary: ImportSummary = { campaignId: options.campaignId, rows: 0, enqueued: 0, duplicates: 0, rejected: [] };
  let header: string[] | undefined;
  let bytes = 0;

  const file = handle.createReadStream(); // closes the handle when it ends or is destroyed
  const lines = new LineCounter();
  const parser = parse({
    bom: true,
    delimiter: dialect.delimiter,
    from_line: dialect.sepLine ? 2 : 1,
    columns: (names: string[]) => {
      // reserved columns are matched whatever their case and spacing; other columns keep their name as metadata
      header = names.map((n) => {
        const canonical = canonicalColumn(n);
        return RESERVED_COLUMNS.has(canonical) ? canonical : n.trim();
      });
      const seen = new Set<string>();
      for (const name of header) {
        if (RESERVED_COLUMNS.has(name) && seen.has(name)) throw new InvalidInputError(`${filePath} has two ${name} columns (header: ${names.join(', ')})`);
        seen.add(name);
      }
      return header;
    },
    info: true,
    raw: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count_less: true,
    skip_records_with_error: true,
    // called as csv-parse reads each record (with info and raw: { record, info, raw }), in file order with the skips
    on_record: (parsed: Omit<ParsedRecord, 'line'>) => ({ ...parsed, line: lines.startOf(parsed.info.lines, parsed.raw) }),
  });
  // pipeline, not pipe: a read error mid-file must reach the loop below instead of leaving it waiting
  if (dialect.encoding === 'utf-8') pipeline(file, parser, () => undefined);
  else pipeline(file, decoderStream(dialect.encoding), parser, () => undefined);
  parser.on('skip', (err: CsvError) => {
    summary.rows++;
    const raw = typeof err.raw === 'string' ? err.raw : '';
    summary.rejected.push({ line: lines.startOf(Number(err.lines), raw), reason: csvErrorReason(err, header?.length ?? 0) });
  });

  const progress = () =>
    options.onProgress?.({
      rows: summary.rows,
      bytes,
      totalBytes: size,
      enqueued: summary.enqueued,
      duplicates: summary.duplicates,
      rejected: summary.rejected.length,
    });

  const inFlight = new InFlight(BATCHES_IN_FLIGHT);
  const send = async (batch: Row[]): Promise<void> => {
    const result: EnqueueSummary = await producer.enqueueCalls(batch.map((r) => r.request));
    summary.enqueued += result.enqueued.length;
    summary.duplicates += result.duplicates.length;
    for (const { index, reason } of result.rejected) summary.rejected.push({ line: batch[index]?.line ?? 0, reason });
    progress();
  };

  let stopped: { error: unknown } | undefined;
  try {
    let batch: Row[] = [];
    for await (const parsed of parser as AsyncIterable<ParsedRecord>) {
      if (!header?.includes(PHONE_NUMBER_COLUMN)) break; // reported below, before anything is enqueued
      summary.rows++;
      bytes = parsed.info.bytes;
      const row = toRow(parsed.record, parsed.line, options, now);
      if (!('request' in row)) {
        summary.rejected.push(row);
        continue;
      }
      batch.push(row);
      if (batch.length >= ENQUEUE_CHUNK_SIZE) {
        const full = batch;
        batch = [];
        if (!(await inFlight.run(() => send(full)))) break; // a batch failed: drain() below throws it
      }
    }
    if (!header) throw new InvalidInputError(`${filePath} is empty: expected a header line with a ${PHONE_NUMBER_COLUMN} column`);
    if (!header.includes(PHONE_NUMBER_COLUMN)) {
      throw new InvalidInputError(`${filePath} has no ${PHONE_NUMBER_COLUMN} column (header: ${header.join(', ').replace(/\s+/g, ' ')})`);
    }
    const last = batch;
    if (last.length > 0) await inFlight.run(() => send(last));
  } catch (err) {
    stopped = { error: err };
  } finally {
    parser.destroy();
    file.destroy();
  }
  try {
    await inFlight.drain(); // every batch sent settles before we report or throw
  } finally {
    if (owned) await producer.close();
  }
  if (stopped) throw stopped.error;

  bytes = size;
  progress();
  summary.rejected.sort((a, b) => a.line - b.line);
  return summary;
}
