import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CallStore } from '../../src/core/callStore.js';
import { InvalidInputError } from '../../src/core/errors.js';
import type { CallJob } from '../../src/core/queues.js';
import { keyedCallId, phoneNumberKey } from '../../src/producer/callIds.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { importCsv, type ImportProgress } from '../../src/producer/importCsv.js';
import { useProducerFixture } from '../helpers/producerFixture.js';
import { uniquePrefix } from '../helpers/testRedis.js';

const prefix = uniquePrefix('import');
const MAX_ATTEMPTS = 3;
let dir: string;
let connection: Redis;
let producer: CallProducer;
let queue: Queue<CallJob>;
let store: CallStore;

async function csvFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

useProducerFixture(prefix, MAX_ATTEMPTS, (fixture) => {
  ({ connection, producer, queue, store } = fixture);
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dialer-import-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});


/**
 * Rows in the streaming import test: enough for dozens of progress reports and many chunks; the 100,000-row figures
 * (wall, CPU, peak RSS) are `npm run bench:import`'s. 100,000 here took 12 s of the suite's two cores.
 */
const BIG_IMPORT_ROWS = 25_000;
/** Seconds past which importing BIG_IMPORT_ROWS rows means something grows with the rows, not a loaded machine. */
const BIG_IMPORT_PATHOLOGY_S = 60;
describe('importCsv', () => {
  it('turns the other columns into string metadata (empty cells omitted) and uses the key column', async () => {
    const file = await csvFile(
      'meta.csv',
      '\uFEFFphone_number, first_name ,key,score,city\r\n+14154000001,Ada,,7,Paris\r\n+1 415 400 0002,Bob,crm-2,,\r\n',
    );
    const summary = await importCsv(file, { campaignId: 'meta', producer, agentProfile: 'sales' });
    expect(summary).toEqual({ campaignId: 'meta', rows: 2, enqueued: 2, duplicates: 0, rejected: [] });

    const byNumber = keyedCallId('meta', phoneNumberKey('+14154000001'));
    const ada = await store.get('meta', byNumber);
    expect(ada).toMatchObject({ phoneNumber: '+14154000001', state: 'queued', metadata: { first_name: 'Ada', score: '7', city: 'Paris' } });
    const job = await queue.getJob(byNumber);
    expect(job?.data).toMatchObject({ phoneNumber: '+14154000001', agentProfile: 'sales', metadata: { first_name: 'Ada', score: '7', city: 'Paris' } });

    const bob = await store.get('meta', keyedCallId('meta', 'crm-2'));
    expect(bob?.phoneNumber).toBe('+14154000002');
    expect(bob?.metadata).toEqual({ first_name: 'Bob' });
    expect((await store.counters('meta')).total).toBe(2);
  });

  it('gives every call the calling window, local to the row’s timezone cell when it has one; a bad zone rejects its row', async () => {
    const file = await csvFile(
      'windows.csv',
      'phone_number,timezone\n+14154100001,America/Los_Angeles\n+14154100002,\n+14154100003,Mars/Olympus\n',
    );
    const window = { from: '09:00', to: '20:00', timeZone: 'America/New_York', days: [1, 2, 3, 4, 5] };
    const summary = await importCsv(file, { campaignId: 'windows', producer, callWindow: window });
    expect(summary.enqueued).toBe(2);
    expect(summary.rejected).toEqual([{ line: 4, reason: 'timezone: "Mars/Olympus" is not an IANA time zone (e.g. America/Los_Angeles)' }]);
    const job = async (number: string) => (await queue.getJob(keyedCallId('windows', phoneNumberKey(number))))?.data;
    expect((await job('+14154100001'))?.callWindow).toEqual({ ...window, timeZone: 'America/Los_Angeles' });
    expect((await job('+14154100002'))?.callWindow).toEqual(window);
  });

  it('dedupes rows by normalised number (no key) and by key, within the file and against earlier imports; refuses a key re-used for another number', async () => {
    const file = await csvFile(
      'dupes.csv',
      [
        'phone_number,key,name',
        '+14154100001,,a',
        '+1 (415) 410-0001,,same number, other format', // line 3: more fields than the header → rejected
        '"+1 415 410 0001",,b',
        '+14154100002,k1,c',
        '+14154100003,k1,d', // line 6: key k1 already names the call to +14154100002
        '+14154100002,,e', // keyed by number: not the same call as key k1
      ].join('\n'),
    );
    const first = await importCsv(file, { campaignId: 'dupes', producer });
    expect(first.enqueued).toBe(3);
    expect(first.duplicates).toBe(1);
    expect(first.rejected).toEqual([
      { line: 3, reason: 'malformed CSV row: 4 fields, the header has 3' },
      { line: 6, reason: expect.stringMatching(/^key "k1" already names call k-\w+ in campaign dupes with number \+14154100002, not \+14154100003/) },
    ]);
    const again = await importCsv(file, { campaignId: 'dupes', producer });
    expect(again).toMatchObject({ rows: 6, enqueued: 0, duplicates: 4 });
    expect(again.rejected.map((r) => r.line)).toEqual([3, 6]);
    expect((await store.counters('dupes')).total).toBe(3);
    expect(await connection.llen(store.keys.campaignCalls('dupes'))).toBe(3);
  });

  it('reports rejected rows with their file line (header = line 1) and reason, and goes on', async () => {
    const file = await csvFile(
      'rejects.csv',
      [
        'phone_number,note', // 1
        '+14154200001,ok', // 2
        'not a number,x', // 3
        '', // 4 (blank: skipped, still counted as a line)
        ',no number', // 5
        '+14154200002,"two', // 6
        'lines"', // 7
        '4154200003,no country code', // 8
        '+14154200004,"unterminated', // 9
        '+14154200005,swallowed by the open quote', // 10
      ].join('\n'),
    );
    const summary = await importCsv(file, { campaignId: 'rejects', producer });
    expect(summary.enqueued).toBe(2);
    expect(summary.rejected.map((r) => r.line)).toEqual([3, 5, 8, 9]);
    expect(summary.rejected[0]?.reason).toMatch(/not a valid phone number/);
    expect(summary.rejected[1]?.reason).toBe('phone_number is empty');
    expect(summary.rejected[2]?.reason).toMatch(/not a valid phone number/);
    expect(summary.rejected[3]?.reason).toMatch(/quote .* never closed/);
    const multi = await store.get('rejects', keyedCallId('rejects', phoneNumberKey('+14154200002')));
    expect(multi?.metadata).toEqual({ note: 'two\nlines' });
  });

  it('rejects a bad timezone cell, named by its column, when no window or time uses it too', async () => {
    const file = await csvFile('zones.csv', 'phone_number,timezone\n+14154100021,Mars/Olympus\n+14154100022,Europe/Paris\n');
    const summary = await importCsv(file, { campaignId: 'zones', producer });
    expect(summary.enqueued).toBe(1);
    expect(summary.rejected).toEqual([{ line: 2, reason: 'timezone: "Mars/Olympus" is not an IANA time zone (e.g. America/Los_Angeles)' }]);
  });

  it('counts a quoted field holding CRLF (Excel) as the lines it spans: later rows keep their own line numbers', async () => {
    const rows = [
      'phone_number;note', // 1
      '+14154200011;"a', // 2
      'b"', // 3
      'bad1;x', // 4
      '+14154200012;"c', // 5
      'd', // 6
      'e"', // 7
      ';no number', // 8
      'bad2;y;extra', // 9 (more fields than the header)
      '+14154200013;ok', // 10
    ];
    const crlf = await importCsv(await csvFile('crlf.csv', `${rows.join('\r\n')}\r\n`), { campaignId: 'crlf-lines', producer });
    expect(crlf.enqueued).toBe(3);
    expect(crlf.rejected.map((r) => r.line)).toEqual([4, 8, 9]);
    // the same file with LF everywhere gives the same lines
    const lf = await importCsv(await csvFile('lf.csv', `${rows.join('\n')}\n`), { campaignId: 'lf-lines', producer });
    expect(lf.rejected.map((r) => r.line)).toEqual([4, 8, 9]);
  });

  it('refuses a file without a phone_number column before enqueuing anything', async () => {
    const file = await csvFile('nocol.csv', 'phone,name\n+14154300001,Ada\n');
    const before = await queue.count();
    await expect(importCsv(file, { campaignId: 'nocol', producer })).rejects.toThrow(InvalidInputError);
    await expect(importCsv(file, { campaignId: 'nocol', producer })).rejects.toThrow(/no phone_number column \(header: phone, name\)/);
    const headerOnly = await csvFile('header-only.csv', 'name\n');
    await expect(importCsv(headerOnly, { campaignId: 'nocol', producer })).rejects.toThrow(/no phone_number column/);
    expect(await queue.count()).toBe(before);
    expect((await store.counters('nocol')).total).toBe(0);
  });

  it('refuses an empty, missing or unreadable file and a bad campaign id', async () => {
    const empty = await csvFile('empty.csv', '');
    await expect(importCsv(empty, { campaignId: 'x', producer })).rejects.toThrow(/is empty/);
    await expect(importCsv(join(dir, 'missing.csv'), { campaignId: 'x', producer })).rejects.toThrow(/cannot read .*ENOENT/);
    await expect(importCsv(dir, { campaignId: 'x', producer })).rejects.toThrow(InvalidInputError);
    await expect(importCsv(empty, { campaignId: 'a:b', producer })).rejects.toThrow(/campaign/);
    const headerOnly = await csvFile('only-header.csv', 'phone_number,name\n');
    expect(await importCsv(headerOnly, { campaignId: 'x', producer })).toEqual({ campaignId: 'x', rows: 0, enqueued: 0, duplicates: 0, rejected: [] });
  });

  it('works as a library with its own short-lived producer', async () => {
    const file = await csvFile('own.csv', 'phone_number\n+14154400001\n');
    const summary = await importCsv(file, { campaignId: 'own', enqueue: { connection, prefix, maxAttempts: MAX_ATTEMPTS } });
    expect(summary.enqueued).toBe(1);
  });

  it('imports a large file streaming, with progress, in bounded time', async () => {
    const rows = BIG_IMPORT_ROWS;
    const path = join(dir, 'big.csv');
    const out = createWriteStream(path);
    out.write('phone_number,first_name,account\n');
    for (let i = 0; i < rows; i++) {
      if (!out.write(`+1415${5_000_000 + i},Name${i % 100},acct-${i}\n`)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');

    const progress: ImportProgress[] = [];
    const started = performance.now();
    const summary = await importCsv(path, { campaignId: 'big', producer, onProgress: (p) => progress.push(p) });
    const seconds = (performance.now() - started) / 1000;
    console.log(`imported ${rows} rows in ${seconds.toFixed(2)} s (${Math.round(rows / seconds)} rows/s)`);

    expect(summary).toEqual({ campaignId: 'big', rows, enqueued: rows, duplicates: 0, rejected: [] });
    // The speed goal (100,000 rows in <= 5 s) is measured by bench:import alone. Here only a pathology fails (a per-row
    // cost that grows with the rows: minutes where a quiet machine takes about a second).
    expect(seconds).toBeLessThan(BIG_IMPORT_PATHOLOGY_S);
    expect((await store.counters('big')).total).toBe(rows);
    expect(await connection.llen(store.keys.campaignCalls('big'))).toBe(rows);
    expect(progress.length).toBeGreaterThan(10);
    expect(progress.at(-1)).toMatchObject({ rows, enqueued: rows, bytes: progress.at(-1)?.totalBytes });
  }, (BIG_IMPORT_PATHOLOGY_S + 30) * 1000);
});
