/**
 * The import reads a plain file (UTF-8, no quote character, LF or CRLF throughout) with its own line splitter instead
 * of csv-parse. Both readers must give the same header, records, rejected rows and line numbers: compared here on
 * random plain files (cells with spaces, tabs, form feeds, no-break spaces, other delimiters and non-ASCII text, blank
 * and whitespace-only lines, short and long rows, BOM, Excel's sep= line), read in tiny chunks so lines and characters
 * are split across reads.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCsvDialect, type CsvDialect } from '../../src/producer/csvDialect.js';
import { csvRecords, type CsvItem } from '../../src/producer/importCsv.js';

let dir: string;
let fileNo = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dialer-plain-csv-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(content: string): Promise<string> {
  fileNo += 1;
  const path = join(dir, `p${fileNo}.csv`);
  await writeFile(path, content);
  return path;
}

interface Read {
  header: string[] | undefined;
  /** In line order. */
  items: CsvItem[];
  error?: string;
}

/** Reads `path` with one reader, `chunk` bytes per read. */
async function read(path: string, dialect: CsvDialect, general: boolean, chunk: number): Promise<Read> {
  const out: Read = { header: undefined, items: [] };
  const columns = (names: string[]) => {
    if (names.includes('boom')) throw new Error(`bad header: ${names.join('|')}`);
    out.header = names;
    return names;
  };
  try {
    for await (const block of csvRecords(createReadStream(path, { highWaterMark: chunk }), dialect, columns, general)) out.items.push(...block.items);
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
  }
  // csv-parse reports a rejected row as it reads it, possibly before records read earlier reach the loop: the import
  // sorts rejections by line, so only the order of lines matters
  out.items.sort((a, b) => a.line - b.line);
  return out;
}

/** A small deterministic PRNG (mulberry32), so a failure names a file that reproduces. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['a', 'b7', '+14155550100', ' ', '  ', '\t', '\f', '\u00a0', 'é', '€', '😀', ',', ';', '|', '', 'x y', '\uFEFF'];

function randomFile(next: () => number): { text: string; delimiter: string } {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  const delimiter = pick([',', ';', '\t', '|']);
  const eol = next() < 0.5 ? '\n' : '\r\n';
  const cell = () => Array.from({ length: Math.floor(next() * 4) }, () => pick(PIECES.filter((p) => p !== delimiter))).join('');
  const lines: string[] = [];
  const sep = next() < 0.2;
  if (sep) lines.push(`sep=${delimiter}`);
  if (next() < 0.2) lines.push(pick(['', '  ', '\t', ' \f ']));
  lines.push(['phone_number', 'name', 'note'].join(delimiter));
  const rows = Math.floor(next() * 12);
  for (let i = 0; i < rows; i++) {
    const kind = next();
    if (kind < 0.15) lines.push(pick(['', ' ', '\t \t', '\f', '\u00a0', ' \u00a0 ']));
    else lines.push(Array.from({ length: 1 + Math.floor(next() * 5) }, cell).join(delimiter));
  }
  const bom = next() < 0.2 ? '\uFEFF' : '';
  const last = next() < 0.5 ? eol : '';
  return { text: `${bom}${lines.join(eol)}${last}`, delimiter };
}

describe('the plain CSV reader', () => {
  it('gives what csv-parse gives on random plain files, whatever the read size', async () => {
    const next = random(17);
    for (let n = 0; n < 100; n++) {
      const { text } = randomFile(next);
      const path = await file(text);
      const dialect = await detectCsvDialect(path);
      expect(dialect.plain, JSON.stringify(text)).toBe(true);
      const general = await read(path, dialect, true, 64 * 1024);
      for (const chunk of [2, 7, 64 * 1024]) {
        expect(await read(path, dialect, false, chunk), `${JSON.stringify(text)} read ${chunk} bytes at a time`).toEqual(general);
      }
    }
  });

  it('names rows by their line, counts blank lines, and rejects a row with more cells than the header', async () => {
    const path = await file('sep=;\r\nPhone_Number;name\r\n\r\n+14155550100; Ada \r\n  \r\n+14155550101;Bob;extra\r\n+14155550102\r\n');
    const dialect = await detectCsvDialect(path);
    const plain = await read(path, dialect, false, 5);
    expect(plain).toEqual({
      header: ['Phone_Number', 'name'],
      items: [
        { line: 4, record: { Phone_Number: '+14155550100', name: 'Ada' } },
        { line: 6, reason: 'malformed CSV row: 3 fields, the header has 2' },
        { line: 7, record: { Phone_Number: '+14155550102' } },
      ],
    });
    expect(await read(path, dialect, true, 5)).toEqual(plain);
  });

  it('stops with the header check\'s error, as csv-parse does', async () => {
    const path = await file('phone_number,boom\n+14155550100,x\n');
    const dialect = await detectCsvDialect(path);
    const plain = await read(path, dialect, false, 4);
    expect(plain.error).toBe('bad header: phone_number|boom');
    expect(plain).toEqual(await read(path, dialect, true, 4));
  });

  it('leaves files with quotes, lone CRs or mixed line breaks to csv-parse', async () => {
    for (const text of ['phone_number,note\n+14155550100,"a"\n', 'phone_number\r+14155550100\r', 'phone_number\r\n+14155550100\n', 'phone_number\n+1415\r5550100\n', 'a\r']) {
      expect((await detectCsvDialect(await file(text))).plain, JSON.stringify(text)).toBe(false);
    }
    expect((await detectCsvDialect(await file('phone_number\r\n+14155550100\r\n'))).plain).toBe(true);
    expect((await detectCsvDialect(await file('phone_number,note\n+14155550100,x\n'), { encoding: 'utf-8' })).plain).toBe(false);
  });
});
