/**
 * CSV files as spreadsheets write them: European Excel (`;`), tab-separated and UTF-16 "Unicode Text", Excel's `sep=`
 * line, headers in any case and spacing, Windows-1252 (refused unless asked for, never imported as mojibake), and
 * reminder lists carrying their own times.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { CallStore } from '../../src/core/callStore.js';
import { InvalidInputError } from '../../src/core/errors.js';
import type { CallJob } from '../../src/core/queues.js';
import { DateTime } from 'luxon';
import { HOUR, SECOND } from '../../src/core/time.js';
import { keyedCallId, phoneNumberKey } from '../../src/producer/callIds.js';
import { detectDelimiter, parseDelimiter, parseEncoding } from '../../src/producer/csvDialect.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { canonicalColumn, importCsv, type ImportCsvOptions } from '../../src/producer/importCsv.js';
import { useProducerFixture } from '../helpers/producerFixture.js';
import { uniquePrefix } from '../helpers/testRedis.js';

const prefix = uniquePrefix('dialects');
let dir: string;
let producer: CallProducer;
let queue: Queue<CallJob>;
let store: CallStore;

useProducerFixture(prefix, 3, (fixture) => {
  ({ producer, queue, store } = fixture);
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dialer-dialects-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Windows-1252 bytes of text whose characters are all in that code page. */
function windows1252(text: string): Buffer {
  const table: Record<string, number> = { 'ü': 0xfc, 'é': 0xe9, 'ö': 0xf6, '€': 0x80 };
  return Buffer.from([...text].map((ch) => table[ch] ?? ch.charCodeAt(0)));
}

function utf16le(text: string): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
}

let fileNo = 0;
async function file(content: string | Buffer): Promise<string> {
  fileNo += 1;
  const path = join(dir, `f${fileNo}.csv`);
  await writeFile(path, content);
  return path;
}

/** The records a campaign's import created, as number → metadata. */
async function imported(campaignId: string): Promise<Record<string, Record<string, unknown>>> {
  return Object.fromEntries((await store.list(campaignId)).map((r) => [r.phoneNumber, r.metadata]));
}

describe('CSV dialects', () => {
  it.each<[string, string | Buffer, Partial<ImportCsvOptions>]>([
    ['comma, LF', 'phone_number,first_name,amount\n+4930111111,Jürgen,"1,5"\n', {}],
    ['semicolon (European Excel), CRLF, Phone_Number header', 'Phone_Number;first_name;amount\r\n+4930111111;Jürgen;1,5\r\n', {}],
    ['tab-separated, "Phone Number" header', 'Phone Number\tfirst_name\tamount\n+4930111111\tJürgen\t1,5\n', {}],
    ['pipe-separated', 'phone_number|first_name|amount\n+4930111111|Jürgen|1,5\n', {}],
    ["Excel's sep= line", 'sep=;\nPHONE-NUMBER;first_name;amount\n+4930111111;Jürgen;1,5\n', {}],
    ['UTF-8 with BOM, semicolon', '\uFEFF phone number ;first_name;amount\r\n+4930111111;Jürgen;1,5\r\n', {}],
    ['UTF-16LE "Unicode Text" (tab)', utf16le('phone_number\tfirst_name\tamount\r\n+4930111111\tJürgen\t1,5\r\n'), {}],
    ['Windows-1252 with --encoding', windows1252('phone_number;first_name;amount\r\n+4930111111;Jürgen;1,5\r\n'), { encoding: 'windows-1252' }],
    // one ; and one , in the header: detection would take the comma, the person says ;
    ['--delimiter given', 'phone_number;first_name,amount\n+4930111111;Jürgen,1.5\n', { delimiter: ';' }],
  ])('%s', async (label, content, options) => {
    const campaignId = `dialect-${fileNo + 1}`;
    const summary = await importCsv(await file(content), { campaignId, producer, ...options });
    expect(summary).toMatchObject({ rows: 1, enqueued: 1, rejected: [] });
    const records = await imported(campaignId);
    if (label === '--delimiter given') {
      expect(records).toEqual({ '+4930111111': { 'first_name,amount': 'Jürgen,1.5' } });
      return;
    }
    expect(records).toEqual({ '+4930111111': { first_name: 'Jürgen', amount: '1,5' } });
  });

  it('refuses a Windows-1252 file (it used to import as mojibake, exit 0), naming the line and what to do; nothing is enqueued', async () => {
    const path = await file(windows1252('phone_number,first_name\n+4930222222,Jurgen\n+4930222223,Jürgen\n'));
    const attempt = importCsv(path, { campaignId: 'cp1252', producer });
    await expect(attempt).rejects.toThrow(InvalidInputError);
    await expect(importCsv(path, { campaignId: 'cp1252', producer })).rejects.toThrow(
      /is not UTF-8 text \(line 3 has bytes that are not\): .*Save it as "CSV UTF-8" instead, or import it with --encoding windows-1252/,
    );
    expect((await store.counters('cp1252')).total).toBe(0);
  });

  it('refuses two columns that both mean phone_number', async () => {
    const path = await file('phone_number,Phone Number\n+4930333333,+4930333334\n');
    await expect(importCsv(path, { campaignId: 'two-phones', producer })).rejects.toThrow(/has two phone_number columns/);
  });

  it('reads region and country columns, and --region for rows without one', async () => {
    const path = await file('phone_number,Country\n(415) 555-0125,US\n020 7946 0958,gb\n030 1234567,\n');
    const summary = await importCsv(path, { campaignId: 'regions-csv', producer, region: 'DE' });
    expect(summary.rejected).toEqual([]);
    expect(Object.keys(await imported('regions-csv')).sort()).toEqual(['+14155550125', '+442079460958', '+49301234567']);
  });

  it('gives each row its own at / delay / expires_at (a reminder list), offset-less in its timezone cell', async () => {
    // the producer schedules from the wall clock, so the list's times are built around it
    const now = Date.now();
    const tomorrow9 = DateTime.fromMillis(now, { zone: 'America/New_York' }).plus({ days: 1 }).set({ hour: 9, minute: 0, second: 0, millisecond: 0 });
    const inSixHours = new Date(now + 6 * HOUR).toISOString();
    const path = await file(
      [
        'phone_number,At,Delay,Expires At,timezone',
        `+14155550201,${tomorrow9.toFormat('yyyy-MM-dd HH:mm')},,,America/New_York`, // wall clock in the row's zone
        '+14155550202,,90,,', // 90 s (bare numbers are seconds)
        `+14155550203,,1h30m,${inSixHours},`,
        '+14155550204,,,,', // the flags' delay
        `+14155550205,${new Date(now - 30 * 24 * HOUR).toISOString()},,,`, // line 6: long past
        '+14155550206,,10000d,,', // line 7: beyond 90 days
        `+14155550207,,,${new Date(now - HOUR).toISOString()},`, // line 8: expired already
      ].join('\n'),
    );
    const summary = await importCsv(path, { campaignId: 'reminders', producer, now, schedule: { delay: 'PT5M' }, timeZone: 'UTC' });
    /** When BullMQ will release the job: its add time plus its delay. */
    const dueAt = async (n: string) => {
      const job = await queue.getJob(keyedCallId('reminders', phoneNumberKey(n)));
      return (job?.timestamp ?? 0) + (job?.opts.delay ?? 0);
    };
    const near = (actual: number, expected: number) => expect(Math.abs(actual - expected)).toBeLessThan(2 * SECOND);
    expect(summary.enqueued).toBe(4);
    expect(summary.rejected).toEqual([
      { line: 6, reason: expect.stringMatching(/^at: ".*" is in the past/) },
      { line: 7, reason: 'delay: "10000d" is more than 90 days' },
      { line: 8, reason: expect.stringMatching(/^expires_at is in the past/) },
    ]);
    near(await dueAt('+14155550201'), tomorrow9.toMillis());
    near(await dueAt('+14155550202'), now + 90 * SECOND);
    near(await dueAt('+14155550203'), now + 90 * 60 * SECOND);
    near(await dueAt('+14155550204'), now + 5 * 60 * SECOND);
    expect((await queue.getJob(keyedCallId('reminders', phoneNumberKey('+14155550203'))))?.data.expiresAt).toBe(Date.parse(inSixHours));
  });
});

describe('dialect pieces', () => {
  it.each<[string, string]>([
    ['a,b,c', ','],
    ['a;b;c', ';'],
    ['a\tb\tc', '\t'],
    ['a|b', '|'],
    ['"x;y",b,c', ','], // quoted delimiters do not count
    ['phone_number', ','],
    ['a;b,c;d', ';'],
  ])('detects the delimiter of %j as %j', (header, delimiter) => {
    expect(detectDelimiter(header)).toBe(delimiter);
  });

  it.each<[string, string]>([
    ['Phone_Number', 'phone_number'],
    [' phone number ', 'phone_number'],
    ['PHONE-NUMBER', 'phone_number'],
    ['Expires At', 'expires_at'],
    ['expiresAt', 'expires_at'],
    ['Time Zone', 'timezone'],
    ['First Name', 'first_name'],
  ])('matches header %j as %j', (header, canonical) => {
    expect(canonicalColumn(header)).toBe(canonical);
  });

  it('names delimiters and encodings as people do, and refuses the rest', () => {
    expect(parseDelimiter('tab')).toBe('\t');
    expect(parseDelimiter('\\t')).toBe('\t');
    expect(parseDelimiter(';')).toBe(';');
    expect(() => parseDelimiter('x')).toThrow(/--delimiter: "x" is not one of/);
    expect(parseEncoding('CP1252')).toBe('windows-1252');
    expect(parseEncoding('latin1')).toBe('windows-1252');
    expect(() => parseEncoding('ebcdic')).toThrow(/--encoding/);
  });
});
