import { createReadStream } from 'node:fs';
import { InvalidInputError } from '../core/errors.js';

/**
 * How a contact list was written, as spreadsheets write them: the delimiter (`,`; `;` from European Excel, which uses
 * the comma as decimal separator; tab from "Unicode Text" and TSV exports), the text encoding, and an Excel `sep=`
 * hint line. Found by reading the start of the file (and all of it once, to check the encoding) before anything is
 * enqueued.
 */
export interface CsvDialect {
  delimiter: string;
  encoding: CsvEncoding;
  /** The file starts with Excel's `sep=;` line, which is not the header. */
  sepLine: boolean;
  /**
   * Checked to be UTF-8 throughout, without a quote character (`"`) anywhere, and with one kind of line break (LF, or
   * CRLF everywhere): each line is one record or a blank line, so the import splits lines and fields itself instead of
   * running the general CSV parser (see importCsv's plainCsvRecords). False when not checked (an encoding was given).
   */
  plain: boolean;
}

/** Encodings an import reads: UTF-8 (with or without BOM), UTF-16 (with its BOM), Windows-1252 when asked for. */
export const CSV_ENCODINGS = ['utf-8', 'utf-16le', 'utf-16be', 'windows-1252'] as const;
export type CsvEncoding = (typeof CSV_ENCODINGS)[number];

/** Names people give these encodings, mapped to ours (latin1 and ISO-8859-1 are read as their superset Windows-1252). */
const ENCODING_ALIASES: Record<string, CsvEncoding> = {
  'utf-8': 'utf-8',
  utf8: 'utf-8',
  'utf-16': 'utf-16le',
  'utf-16le': 'utf-16le',
  'utf-16be': 'utf-16be',
  'windows-1252': 'windows-1252',
  cp1252: 'windows-1252',
  latin1: 'windows-1252',
  'iso-8859-1': 'windows-1252',
};

/** Delimiters detection chooses from, most common first (the first wins a tie). */
export const DETECTED_DELIMITERS = [',', ';', '\t', '|'] as const;
/** Names a delimiter may be given by on the command line. */
const DELIMITER_NAMES: Record<string, string> = { ',': ',', comma: ',', ';': ';', semicolon: ';', '\t': '\t', '\\t': '\t', tab: '\t', '|': '|', pipe: '|' };
/** Bytes read to find the header line. */
const SNIFF_BYTES = 64 * 1024;

/** `--encoding`: one of CSV_ENCODINGS or an alias; throws InvalidInputError naming the choices. */
export function parseEncoding(text: string): CsvEncoding {
  const encoding = ENCODING_ALIASES[text.trim().toLowerCase()];
  if (!encoding) throw new InvalidInputError(`--encoding: "${text}" is not one of utf-8, utf-16le, utf-16be, windows-1252 (also cp1252, latin1)`);
  return encoding;
}

/** `--delimiter`: `,` `;` `|`, or tab (`tab`, `\t`, a real tab), or their names; throws InvalidInputError. */
export function parseDelimiter(text: string): string {
  const delimiter = DELIMITER_NAMES[text.toLowerCase()];
  if (!delimiter) throw new InvalidInputError(`--delimiter: "${text}" is not one of , ; | tab`);
  return delimiter;
}

/** The encoding a byte-order mark announces. */
function bomEncoding(start: Buffer): CsvEncoding | undefined {
  if (start[0] === 0xff && start[1] === 0xfe) return 'utf-16le';
  if (start[0] === 0xfe && start[1] === 0xff) return 'utf-16be';
  return undefined;
}

/** Delimiter of a header line: the candidate seen most often outside quotes (`,` when none is). */
export function detectDelimiter(headerLine: string): string {
  const counts = new Map<string, number>();
  let quoted = false;
  for (const ch of headerLine) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (DETECTED_DELIMITERS as readonly string[]).includes(ch)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  }
  let best: string = DETECTED_DELIMITERS[0];
  let bestCount = 0;
  for (const d of DETECTED_DELIMITERS) {
    const n = counts.get(d) ?? 0;
    if (n > bestCount) {
      best = d;
      bestCount = n;
    }
  }
  return best;
}

async function readStart(filePath: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of createReadStream(filePath, { start: 0, end: SNIFF_BYTES - 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Line (1-based) of the first byte sequence that is not UTF-8, read again from the start (the failure path only). */
async function firstBadUtf8Line(filePath: string): Promise<number> {
  const decoder = new TextDecoder('utf-8');
  let line = 1;
  for await (const chunk of createReadStream(filePath)) {
    const text = decoder.decode(chunk as Buffer, { stream: true });
    const bad = text.indexOf('\uFFFD');
    const upTo = bad === -1 ? text : text.slice(0, bad);
    for (let i = upTo.indexOf('\n'); i !== -1; i = upTo.indexOf('\n', i + 1)) line++;
    if (bad !== -1) return line;
  }
  return line;
}

const QUOTE_BYTE = 0x22;
const CR_BYTE = 0x0d;
const LF_BYTE = 0x0a;

/**
 * Whether a file read chunk by chunk is plain (CsvDialect.plain) as far as its bytes go: no quote byte, and either no
 * CR or a CR before every LF and an LF after every CR.
 */
class PlainScan {
  private quoted = false;
  private crs = 0;
  private lfs = 0;
  private loneCr = false;
  private endsWithCr = false;

  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (!this.quoted && chunk.includes(QUOTE_BYTE)) this.quoted = true;
    if (this.endsWithCr && chunk[0] !== LF_BYTE) this.loneCr = true;
    for (let i = chunk.indexOf(CR_BYTE); i !== -1; i = chunk.indexOf(CR_BYTE, i + 1)) {
      this.crs++;
      if (i + 1 < chunk.length && chunk[i + 1] !== LF_BYTE) this.loneCr = true;
    }
    for (let i = chunk.indexOf(LF_BYTE); i !== -1; i = chunk.indexOf(LF_BYTE, i + 1)) this.lfs++;
    this.endsWithCr = chunk[chunk.length - 1] === CR_BYTE;
  }

  get plain(): boolean {
    return !this.quoted && (this.crs === 0 || (!this.loneCr && !this.endsWithCr && this.crs === this.lfs));
  }
}

/**
 * Throws InvalidInputError, saying what to do, unless the whole file is UTF-8 (streamed, never held in memory).
 * Returns whether the file is plain (CsvDialect.plain), found in the same pass.
 */
async function requireUtf8(filePath: string): Promise<boolean> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const scan = new PlainScan();
  try {
    for await (const chunk of createReadStream(filePath)) {
      decoder.decode(chunk as Buffer, { stream: true });
      scan.add(chunk as Buffer);
    }
    decoder.decode();
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    const line = await firstBadUtf8Line(filePath);
    throw new InvalidInputError(
      `${filePath} is not UTF-8 text (line ${line} has bytes that are not): Excel's "CSV (Comma delimited)" writes Windows-1252. ` +
        'Save it as "CSV UTF-8" instead, or import it with --encoding windows-1252',
    );
  }
  return scan.plain;
}

/**
 * Finds how a CSV file is written. `encoding` and `delimiter` are what the person asked for (undefined: detect): a
 * UTF-16 byte-order mark is honoured, anything else must be UTF-8 unless an encoding is given (so a Windows-1252 file
 * is refused, not imported as mojibake); the delimiter comes from Excel's `sep=` line or the header line. Throws
 * InvalidInputError.
 */
export async function detectCsvDialect(filePath: string, asked: { encoding?: CsvEncoding; delimiter?: string } = {}): Promise<CsvDialect> {
  const start = await readStart(filePath);
  const encoding = asked.encoding ?? bomEncoding(start) ?? 'utf-8';
  const plain = encoding === 'utf-8' && asked.encoding === undefined ? await requireUtf8(filePath) : false;
  const text = new TextDecoder(encoding).decode(start).replace(/^\uFEFF/, '');
  const firstLine = text.split(/\r?\n/, 1)[0] ?? '';
  const sep = /^"?sep=(.)"?$/i.exec(firstLine);
  if (sep?.[1] !== undefined) return { delimiter: asked.delimiter ?? sep[1], encoding, sepLine: true, plain };
  return { delimiter: asked.delimiter ?? detectDelimiter(firstLine), encoding, sepLine: false, plain };
}
