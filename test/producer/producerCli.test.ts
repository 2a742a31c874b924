import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CallStore } from '../../src/core/callStore.js';
import { CALLS_QUEUE, type CallJob } from '../../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { SECOND, systemClock } from '../../src/core/time.js';
import { keyedCallId } from '../../src/producer/callIds.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { runCliInProcess } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const url = testRedisUrl();
const prefix = uniquePrefix('producer-cli');
let baseline = 0;
let dir: string;
let connection: Redis;
let queue: Queue<CallJob>;
let store: CallStore;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a child process, the way users and other services do. */
function dialer(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // the installed command (bin/dialer.mjs): the build when it is current, else the TypeScript through tsx
    const child = spawn(process.execPath, ['bin/dialer.mjs', ...args], {
      cwd: process.cwd(),
      env: { ...process.env, REDIS_URL: url, QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The same command line run in this process (test/helpers/runCli.ts runCliInProcess): for the tests about what a
 * command does with its input; the installed command's own process is started by the tests of its exit and output.
 */
function dialerInProcess(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runCliInProcess(args, { REDIS_URL: url, QUEUE_PREFIX: prefix, ...env });
}

/** Each test starts CLI processes; on a loaded 2-core machine one can take half a minute to start (tsx when src/ is newer than the build). */
const CLI_TEST_TIMEOUT_MS = 180_000;

/** A refusal: exit 2, exactly one line on stderr saying why, nothing on stdout. */
function expectRefused(run: Run, reason: RegExp): void {
  expect(run.code).toBe(2);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(/^dialer: [^\n]+\n$/);
  expect(run.stderr).toMatch(reason);
}

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  dir = await mkdtemp(join(tmpdir(), 'dialer-cli-'));
  connection = createProducerConnection(url);
  await waitUntilReady(connection);
  queue = new Queue<CallJob>(CALLS_QUEUE, { connection, prefix });
  store = new CallStore(connection, prefix, systemClock);
});

afterAll(async () => {
  await queue.close();
  await closeConnection(connection);
  await deleteKeysWithPrefix(url, prefix);
  await rm(dir, { recursive: true, force: true });
  await expectNoLeakedHandles(baseline);
});

describe('dialer enqueue', () => {
  it('prints the call id and exits 0; the job carries the normalised number and metadata', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const run = await dialer(['enqueue', '+1 415 600 0001', '--campaign', 'cli', '--metadata', '{"first_name":"Ada","vip":true}', '--profile', 'survey']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^c-[0-9a-f-]{36}\n$/);
    const callId = run.stdout.trim();
    const job = await queue.getJob(callId);
    expect(job?.data).toMatchObject({ callId, campaignId: 'cli', phoneNumber: '+14156000001', metadata: { first_name: 'Ada', vip: true }, agentProfile: 'survey' });
    expect(await job?.getState()).toBe('waiting');
    expect((await store.get('cli', callId))?.state).toBe('queued');
  });

  it('enqueues the same --key once and prints the same id both times', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const first = await dialerInProcess(['enqueue', '+14156000002', '--campaign', 'cli-key', '--key', 'order-7']);
    const second = await dialerInProcess(['enqueue', '+14156000002', '--campaign', 'cli-key', '--key', 'order-7']);
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    expect(first.stdout).toBe(`${keyedCallId('cli-key', 'order-7')}\n`);
    expect(second.stdout).toBe(first.stdout);
    expect((await store.counters('cli-key')).total).toBe(1);
    expect((await queue.getJobs(['waiting'])).filter((j) => j.data.campaignId === 'cli-key')).toHaveLength(1);
  });

  it('delays the job with --delay and --at (BullMQ delayed state, the right delay)', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const before = Date.now();
    const [delayed, at] = await Promise.all([
      dialerInProcess(['enqueue', '+14156000003', '--campaign', 'cli-delay', '--delay', '90s']),
      dialerInProcess(['enqueue', '+14156000004', '--campaign', 'cli-delay', '--at', new Date(before + 3600 * SECOND).toISOString()]),
    ]);
    expect(delayed.code).toBe(0);
    expect(at.code).toBe(0);
    const delayedJob = await queue.getJob(delayed.stdout.trim());
    expect(await delayedJob?.getState()).toBe('delayed');
    // BullMQ releases a job at its own timestamp + delay: 90 s after the command was given
    const delayedDue = (delayedJob?.timestamp ?? 0) + (delayedJob?.opts.delay ?? 0);
    expect(delayedDue).toBeGreaterThanOrEqual(before + 90 * SECOND);
    expect(delayedDue).toBeLessThanOrEqual(Date.now() + 90 * SECOND);
    const atJob = await queue.getJob(at.stdout.trim());
    expect(await atJob?.getState()).toBe('delayed');
    const atDelay = atJob?.opts.delay ?? 0;
    expect(atDelay).toBeLessThanOrEqual(3600 * SECOND);
    expect(atDelay).toBeGreaterThan(3600 * SECOND - (Date.now() - before) - SECOND);
    // BullMQ schedules the job at its own timestamp + delay: that is the --at instant
    expect(Math.abs((atJob?.timestamp ?? 0) + atDelay - (before + 3600 * SECOND))).toBeLessThan(SECOND);
  });

  it('refuses bad input with exit 2, one line on stderr, and enqueues nothing', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    // the full matrix of refusals runs in-process (enqueueRequest.test.ts); here the exit code and stderr shape
    const countBefore = await queue.count();
    const [badNumber, badJson] = await Promise.all([
      dialerInProcess(['enqueue', '4156000005', '--campaign', 'cli-bad']),
      dialerInProcess(['enqueue', '+14156000005', '--campaign', 'cli-bad', '--metadata', '{first_name: Ada}']),
    ]);
    const [notFlat, both] = await Promise.all([
      dialerInProcess(['enqueue', '+14156000005', '--campaign', 'cli-bad', '--metadata', '{"nested":{"a":1}}']),
      dialerInProcess(['enqueue', '+14156000005', '--campaign', 'cli-bad', '--at', '2030-01-01T09:00:00Z', '--delay', '90s']),
    ]);
    expectRefused(badNumber, /not a valid phone number: "4156000005" \(no country code: add \+<country code>/);
    expectRefused(badJson, /--metadata: not valid JSON/);
    expectRefused(notFlat, /--metadata: expected a flat JSON object/);
    expectRefused(both, /either --at or --delay/);
    expect(await queue.count()).toBe(countBefore);
    expect((await store.counters('cli-bad')).total).toBe(0);
  });

  it('refuses --metadata and --settings holding __proto__ (any spelling) with exit 2 naming the key, as the API refuses such a body', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const countBefore = await queue.count();
    const proto = await dialerInProcess(['enqueue', '+14156000006', '--campaign', 'cli-proto', '--metadata', '{"__proto__":{"x":1}}']);
    const escaped = await dialerInProcess(['enqueue', '+14156000006', '--campaign', 'cli-proto', '--metadata', '{"a":1,"\\u005f_proto__":{"x":1}}']);
    const settings = await dialerInProcess(['campaign', 'create', 'cli-proto', '--settings', '{"cps":1,"__proto__":{"cps":5}}']);
    expectRefused(proto, /^dialer: --metadata: the key "__proto__" at __proto__ is never accepted/);
    expectRefused(escaped, /--metadata: the key "__proto__" at __proto__ is never accepted/);
    expectRefused(settings, /^dialer: --settings: the key "__proto__" at __proto__ is never accepted/);
    expect(await queue.count()).toBe(countBefore);
    expect((await store.counters('cli-proto')).total).toBe(0);
  });

  it('shows the person the number as typed, explains Excel notation, and reads national numbers in --region or DIAL_DEFAULT_REGION', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const [vanity, excel, national, withFlag, withSetting] = await Promise.all([
      dialerInProcess(['enqueue', '+1 555 CALL-NOW', '--campaign', 'cli-numbers']),
      dialerInProcess(['enqueue', '1.4155550233E+10', '--campaign', 'cli-numbers']),
      dialerInProcess(['enqueue', '(415) 555-0125', '--campaign', 'cli-numbers']),
      dialerInProcess(['enqueue', '(415) 555-0125', '--campaign', 'cli-numbers', '--region', 'US']),
      dialerInProcess(['enqueue', '020 7946 0958', '--campaign', 'cli-numbers'], { DIAL_DEFAULT_REGION: 'GB' }),
    ]);
    expectRefused(vanity, /not a valid phone number: "\+1 555 CALL-NOW" \(it has letters/);
    expectRefused(excel, /"1\.4155550233E\+10" \(this is scientific notation, as Excel shows a long number .* format the phone column as Text/);
    expectRefused(national, /"\(415\) 555-0125" \(no country code: add \+<country code> \(e\.g\. \+1 415 555 0123\), or set a default region: --region US/);
    expect(withFlag.code).toBe(0);
    expect(withSetting.code).toBe(0);
    expect((await queue.getJob(withFlag.stdout.trim()))?.data.phoneNumber).toBe('+14155550125');
    expect((await queue.getJob(withSetting.stdout.trim()))?.data.phoneNumber).toBe('+442079460958');
  });

  it('exits 4 with a one-line reason when Redis cannot be reached', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const run = await dialer(['enqueue', '+14156000006'], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(run.code).toBe(4);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^dialer: cannot reach Redis at 127\.0\.0\.1:1[^\n]*\n$/);
  });
});

describe('dialer import', () => {
  it('imports a CSV and prints the summary with rejected lines; exit 3 when some rows were rejected', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const file = join(dir, 'campaign.csv');
    await writeFile(file, 'phone_number,first_name\n+14156100001,Ada\n+14156100002,Bob\nnope,Carl\n+1 415 610 0001,Ada again\n\n,Nobody\n');
    const run = await dialer(['import', file, '--campaign', 'cli-import']);
    expect(run.code).toBe(3); // some rows rejected (README, exit codes)
    expect(run.stderr).toBe(''); // no TTY: no progress bar
    expect(run.stdout).toBe(
      [
        `imported ${file} into campaign cli-import: 5 rows`,
        'enqueued: 2',
        'duplicates: 1',
        'rejected: 2',
        '  line 4: not a valid phone number: "nope" (it has no digits)',
        '  line 7: phone_number is empty',
        '',
      ].join('\n'),
    );
    expect((await store.counters('cli-import')).total).toBe(2);
    const records = await store.list('cli-import');
    expect(records.map((r) => [r.phoneNumber, r.metadata])).toEqual([
      ['+14156100001', { first_name: 'Ada' }],
      ['+14156100002', { first_name: 'Bob' }],
    ]);
  });

  it('exits 2 when the file has no phone_number column or cannot be read', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const noColumn = join(dir, 'no-column.csv');
    await writeFile(noColumn, 'number,name\n+14156200001,Ada\n');
    const countBefore = await queue.count();
    const [missingColumn, missingFile] = await Promise.all([
      dialer(['import', noColumn, '--campaign', 'cli-import-bad']),
      dialer(['import', join(dir, 'does-not-exist.csv'), '--campaign', 'cli-import-bad']),
    ]);
    const noCampaign = await dialer(['import', noColumn]);
    expectRefused(missingColumn, /no phone_number column/);
    expectRefused(missingFile, /cannot read .*does-not-exist\.csv: ENOENT/);
    expect(noCampaign.code).toBe(2); // commander: required option missing
    expect(noCampaign.stderr).toMatch(/--campaign/);
    expect(await queue.count()).toBe(countBefore);
  });
});
