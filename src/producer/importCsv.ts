import { open, type FileHandle } from 'node:fs/promises';
import { Transform, pipeline, type Readable } from 'node:stream';
import { parse, type CsvError, type Info } from 'csv-parse';
import { isTimeZone, type CallWindow } from '../core/callWindow.js';
import { DEFAULT_TIME_ZONE } from '../core/config.js';
import { errorCode, errorMessage, InvalidInputError } from '../core/errors.js';
import { idSchema } from '../core/queues.js';
import { resolveSchedule, type ScheduleInput } from '../core/time.js';
import { detectCsvDialect, type CsvDialect, type CsvEncoding } from './csvDialect.js';
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
/** Lines csv-parse skips as empty before a record: nothing, or only what its trim removes at a cell's start. */
const LEADING_BLANK_LINES = /^(?:[\t\f ]*(?:\r\n|\r|\n))+/;

/**
 * Where each record starts, from csv-parse's own count (`info.lines`, the line a record ends on) and its raw text.
 * csv-parse 6 counts each CRLF inside a quoted field as two lines (it counts a line after every CR or LF not
 * directly followed by another one it has counted, and a CRLF inside quotes is not a record delimiter it skips
 * whole), so every record after an Excel cell holding a line break would be reported lines too far. This keeps the
 * running total of those extra counts. Records (and skipped ones) must be passed in the order csv-parse reads them.
 */
class LineCounter {
  private overcounted = 0;

  /**
   * The line `raw` (a record's raw text, the blank lines before it included) starts on, given csv-parse's end line. A
   * line of nothing but spaces, tabs or form feeds is blank too (csv-parse's trim empties it and it is skipped).
   */
  startOf(endLine: number, raw: string): number {
    const body = raw.replace(LEADING_BLANK_LINES, '').replace(/(\r\n|\r|\n)$/, '');
    this.overcounted += body.match(CRLF)?.length ?? 0;
    return endLine - this.overcounted - (body.match(LINE_BREAK)?.length ?? 0);
  }
}

/** Why a row with more fields than the header is rejected (`fields` unknown: "more fields"). */
function fieldCountReason(fields: number | undefined, columns: number): string {
  return `malformed CSV row: ${fields === undefined ? 'more fields' : `${fields} fields`}, the header has ${columns}`;
}

function csvErrorReason(err: CsvError, columns: number): string {
  switch (err.code) {
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH':
    case 'CSV_RECORD_INCONSISTENT_COLUMNS':
      return fieldCountReason(Array.isArray(err.record) ? err.record.length : undefined, columns);
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

/** Whether the row or the flags give any time (most imports: neither, and no schedule is built per row). */
function hasSchedule(record: Record<string, string | undefined>, flags: ScheduleInput | undefined): boolean {
  if (flags && (flags.at !== undefined || flags.delay !== undefined || flags.expiresAt !== undefined)) return true;
  return Boolean(record[SCHEDULE_COLUMNS.at] || record[SCHEDULE_COLUMNS.delay] || record[SCHEDULE_COLUMNS.expiresAt]);
}

const SCHEDULE_COLUMN_NAMES = { at: SCHEDULE_COLUMNS.at, delay: SCHEDULE_COLUMNS.delay, expiresAt: SCHEDULE_COLUMNS.expiresAt };

function toRow(record: Record<string, string | undefined>, line: number, options: ImportCsvOptions, now: number): Row | RejectedRow {
  const phoneNumber = record[PHONE_NUMBER_COLUMN] ?? '';
  if (phoneNumber === '') return { line, reason: `${PHONE_NUMBER_COLUMN} is empty` };
  const metadata: Record<string, string> = {};
  // for…in, not Object.entries: the same own keys in the same order (records are plain objects), no pair per cell
  for (const column in record) {
    const value = record[column];
    if (column === PHONE_NUMBER_COLUMN || column === KEY_COLUMN || column === '' || value === undefined || value === '') continue;
    metadata[column] = value;
  }
  const key = cell(record, KEY_COLUMN);
  const timeZone = cell(record, TIMEZONE_COLUMN);
  // checked whether or not a window or times use it: a bad cell rejects its row, named by its column
  if (timeZone !== undefined && !isTimeZone(timeZone)) {
    return { line, reason: `${TIMEZONE_COLUMN}: ${JSON.stringify(timeZone)} is not an IANA time zone (e.g. America/Los_Angeles)` };
  }
  let region: string | undefined;
  for (const column of REGION_COLUMNS) region ??= cell(record, column);
  region ??= options.region;
  const callWindow = options.callWindow && timeZone ? { ...options.callWindow, timeZone } : options.callWindow;
  let times: { notBefore?: number; expiresAt?: number } = {};
  const schedule = hasSchedule(record, options.schedule) ? rowSchedule(record, options.schedule ?? {}) : undefined;
  if (schedule && (schedule.at !== undefined || schedule.delay !== undefined || schedule.expiresAt !== undefined)) {
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

/** A record of the file (cells by column) or a row rejected as malformed CSV, with the line it starts on. */
export type CsvItem = { line: number; record: CsvRecord } | RejectedRow;
export type CsvRecord = Record<string, string | undefined>;

/** Items in file order, and the bytes of the file read up to the last of them (for progress). */
export interface CsvBlock {
  items: CsvItem[];
  bytes: number;
}

/**
 * How the header line becomes column names (called once, with the header's trimmed cells; may throw, which stops the
 * reading with that error).
 */
export type ColumnNames = (names: string[]) => string[];

/** The general reader: csv-parse, for any file (quotes, line breaks in cells, other encodings). One item per block. */
async function* parsedCsvRecords(file: Readable, dialect: CsvDialect, columns: ColumnNames): AsyncGenerator<CsvBlock> {
  const lines = new LineCounter();
  let columnCount = 0;
  const parser = parse({
    bom: true,
    delimiter: dialect.delimiter,
    from_line: dialect.sepLine ? 2 : 1,
    columns: (names: string[]) => {
      const header = columns(names);
      columnCount = header.length;
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
  let skipped: CsvItem[] = [];
  parser.on('skip', (err: CsvError) => {
    const raw = typeof err.raw === 'string' ? err.raw : '';
    skipped.push({ line: lines.startOf(Number(err.lines), raw), reason: csvErrorReason(err, columnCount) });
  });
  let bytes = 0;
  try {
    for await (const parsed of parser as AsyncIterable<ParsedRecord>) {
      const items = skipped;
      skipped = [];
      items.push({ line: parsed.line, record: parsed.record });
      bytes = parsed.info.bytes;
      yield { items, bytes };
    }
    if (skipped.length > 0) yield { items: skipped, bytes };
  } finally {
    parser.destroy();
  }
}

const LF = 0x0a;
const CR_CODE = 0x0d;
/** What csv-parse's `trim` strips at the start of an unquoted cell (its `timchars`); the end is trimmed by trimEnd(). */
const isLeadingTrim = (code: number) => code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d;

function trimCell(cell: string): string {
  let start = 0;
  while (start < cell.length && isLeadingTrim(cell.charCodeAt(start))) start++;
  return (start === 0 ? cell : cell.slice(start)).trimEnd();
}

/**
 * The reader of a plain file (CsvDialect.plain: UTF-8, no quote character, LF or CRLF throughout), where each line is a
 * record or blank: lines split at LF (a CRLF's CR dropped), cells at the delimiter, giving what csv-parse gives with
 * parsedCsvRecords' options (test/producer/csvPlainReader.test.ts compares them): a UTF-8 BOM skipped, Excel's sep=
 * line skipped, a line of nothing but spaces, tabs and form feeds skipped as blank (still counted), cells trimmed as
 * csv-parse trims them, a row with more cells than the header rejected, with fewer read as far as it goes. Items come a
 * read chunk at a time, with no promise per row.
 */
async function* plainCsvRecords(file: AsyncIterable<Buffer>, dialect: CsvDialect, columns: ColumnNames): AsyncGenerator<CsvBlock> {
  const delimiter = dialect.delimiter;
  let header: string[] | undefined;
  let line = 0;
  let bytes = 0;
  let carry: Buffer | undefined;

  const readLines = (text: string, items: CsvItem[]): void => {
    let from = 0;
    while (from <= text.length) {
      let to = text.indexOf('\n', from);
      if (to === -1) to = text.length;
      const end = to > from && text.charCodeAt(to - 1) === CR_CODE ? to - 1 : to;
      line++;
      const cells = text.slice(from, end).split(delimiter);
      from = to + 1;
      if (line === 1 && dialect.sepLine) continue;
      const first = cells[0] ?? '';
      if (cells.length === 1 && !/[^\t\n\f\r ]/.test(first)) continue; // blank: nothing csv-parse's trim keeps
      for (let i = 0; i < cells.length; i++) cells[i] = trimCell(cells[i] ?? '');
      if (header === undefined) {
        header = columns(cells);
        continue;
      }
      if (cells.length > header.length) {
        items.push({ line, reason: fieldCountReason(cells.length, header.length) });
        continue;
      }
      const record: CsvRecord = {};
      for (let i = 0; i < cells.length; i++) {
        const name = header[i];
        if (name !== undefined) record[name] = cells[i];
      }
      items.push({ line, record });
    }
  };

  for await (const chunk of file) {
    const buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    const lastLf = buffer.lastIndexOf(LF);
    if (lastLf === -1) {
      carry = buffer;
      continue;
    }
    carry = lastLf + 1 < buffer.length ? buffer.subarray(lastLf + 1) : undefined;
    const text = buffer.toString('utf8', 0, lastLf);
    const items: CsvItem[] = [];
    readLines(bytes === 0 ? text.replace(/^\uFEFF/, '') : text, items);
    bytes += lastLf + 1;
    yield { items, bytes };
  }
  if (carry && carry.length > 0) {
    const text = carry.toString('utf8');
    const items: CsvItem[] = [];
    // a last line without a line break: a record unless blank (no empty line after it)
    readLines(bytes === 0 ? text.replace(/^\uFEFF/, '') : text, items);
    bytes += carry.length;
    yield { items, bytes };
  }
}

/** A delimiter the plain reader splits at exactly as csv-parse does: one ASCII character other than a quote or line break. */
const splittable = (delimiter: string) => delimiter.length === 1 && delimiter.charCodeAt(0) < 0x80 && !'"\r\n'.includes(delimiter);

/**
 * The records of a CSV file, in file order, a block at a time: through the plain reader when the dialect says the file
 * is plain (and `general` is not set), else through csv-parse. `columns` names the columns from the header line.
 * Exported for the test that compares the two readers.
 */
export function csvRecords(file: Readable, dialect: CsvDialect, columns: ColumnNames, general = false): AsyncGenerator<CsvBlock> {
  if (!general && dialect.plain && dialect.encoding === 'utf-8' && splittable(dialect.delimiter)) {
    return plainCsvRecords(file as AsyncIterable<Buffer>, dialect, columns);
  }
  return parsedCsvRecords(file, dialect, columns);
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
  const columns: ColumnNames = (names) => {
    // reserved columns are matched whatever their case and spacing; other columns keep their name as metadata
    const named = names.map((n) => {
      const canonical = canonicalColumn(n);
      return RESERVED_COLUMNS.has(canonical) ? canonical : n.trim();
    });
    const seen = new Set<string>();
    for (const name of named) {
      if (RESERVED_COLUMNS.has(name) && seen.has(name)) throw new InvalidInputError(`${filePath} has two ${name} columns (header: ${names.join(', ')})`);
      seen.add(name);
    }
    header = named;
    return named;
  };

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
    let failed = false;
    for await (const block of csvRecords(file, dialect, columns)) {
      if (!header?.includes(PHONE_NUMBER_COLUMN)) break; // reported below, before anything is enqueued
      bytes = block.bytes;
      for (const item of block.items) {
        summary.rows++;
        if (!('record' in item)) {
          summary.rejected.push(item);
          continue;
        }
        const row = toRow(item.record, item.line, options, now);
        if (!('request' in row)) {
          summary.rejected.push(row);
          continue;
        }
        batch.push(row);
        if (batch.length >= ENQUEUE_CHUNK_SIZE) {
          const full = batch;
          batch = [];
          if (!(await inFlight.run(() => send(full)))) {
            failed = true; // a batch failed: drain() below throws it
            break;
          }
        }
      }
      if (failed) break;
    }
    if (!header) throw new InvalidInputError(`${filePath} is empty: expected a header line with a ${PHONE_NUMBER_COLUMN} column`);
    if (!header.includes(PHONE_NUMBER_COLUMN)) {
      throw new InvalidInputError(`${filePath} has no ${PHONE_NUMBER_COLUMN} column (header: ${header.join(', ').replace(/\s+/g, ' ')})`);
    }
    const last = batch;
    if (!failed && last.length > 0) await inFlight.run(() => send(last));
  } catch (err) {
    stopped = { error: err };
  } finally {
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
