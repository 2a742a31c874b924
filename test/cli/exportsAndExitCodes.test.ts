/**
 * The command line as people use it: complete exports (report --csv / --json, call, campaigns; their content checked
 * on the command line run in-process), and, through the real `dialer` command, exit codes that tell the truth (unknown campaigns, partial and failed imports, a conflicting
 * --key, Redis away), each documented in README's exit-code table.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { systemClock } from '../../src/core/time.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { runCli, runCliInProcess, type CliRun } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const url = testRedisUrl();
const prefix = uniquePrefix('exports-cli');
const env = { REDIS_URL: url, QUEUE_PREFIX: prefix };
let baseline = 0;
let dir: string;
let connection: Redis;
let store: CallStore;
let producer: CallProducer;

/** The documented exit codes (README, "Exit codes"). */
const EXIT = { ok: 0, input: 2, partial: 3, unavailable: 4 } as const;
/** Each test starts several CLI processes at once; on a loaded 2-core machine one can take half a minute to start. */
const CLI_TEST_TIMEOUT_MS = 180_000;

function dialer(args: string[], extra: Record<string, string> = {}): Promise<CliRun> {
  return runCli(args, { ...env, ...extra });
}

/**
 * The same command line in this process (runCliInProcess, which ends as the process does: same exit code, stdout and
 * stderr, test/helpers/runCli.test.ts): for what an export contains and for the exit codes of a command's own logic.
 * The process itself (its start, what reaches fd 2 when Redis is away) is tested through `dialer`.
 */
function dialerInProcess(args: string[]): Promise<CliRun> {
  return runCliInProcess(args, env);
}

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  dir = await mkdtemp(join(tmpdir(), 'dialer-exports-'));
  connection = createProducerConnection(url);
  await waitUntilReady(connection);
  store = new CallStore(connection, prefix, systemClock);
  producer = new CallProducer({ connection, prefix, maxAttempts: 3 });
});

afterAll(async () => {
  await producer.close();
  await closeConnection(connection);
  await deleteKeysWithPrefix(url, prefix);
  await rm(dir, { recursive: true, force: true });
  await expectNoLeakedHandles(baseline);
});

describe('exports people reconcile against', () => {
  let surveyed = '';
  let busy = '';
  let queued = '';
  /** The waiting call's start time and expiry (report --json: dueAt, expiresAt). */
  const queuedStart = Date.now() + 60 * 60 * 1000;
  const queuedExpiry = queuedStart + 2 * 60 * 60 * 1000;

  beforeAll(async () => {
    ({ callId: surveyed } = await producer.enqueueCall({ phoneNumber: '+14155550301', campaignId: 'spring', key: 'crm-1', metadata: { first_name: 'Ada', outcome: 'x' } }));
    ({ callId: busy } = await producer.enqueueCall({ phoneNumber: '+1 650 555 0100 x136', campaignId: 'spring', key: 'crm-2', metadata: { first_name: '=cmd()' } }));
    ({ callId: queued } = await producer.enqueueCall({ phoneNumber: '+14155550303', campaignId: 'spring', metadata: { first_name: 'Cy' }, notBefore: queuedStart, expiresAt: queuedExpiry }));
    const endedAt = Date.parse('2030-06-01T12:00:00Z');
    await store.applyTerminal({
      callId: surveyed,
      campaignId: 'spring',
      outcome: 'answered',
      reason: 'agent ended the call',
      reportedBy: 'agent',
      attempt: 1,
      durationMs: 42_400,
      surveyAnswers: [
        { question: 'How likely are you to recommend us?', answer: '9' },
        { question: 'What should we improve?', answer: 'Shorter, waiting "times"' },
      ],
      summary: 'Happy customer.',
      transcript: [
        { role: 'callee', text: 'Hello?' },
        { role: 'agent', text: 'Hi Ada, a short survey.' },
      ],
      endedAt,
    });
    await store.applyTerminal({ callId: busy, campaignId: 'spring', outcome: 'busy', reason: '486 Busy Here on every attempt', reportedBy: 'consumer', sipStatusCode: 486, sipStatus: 'Busy Here', endedAt });
  });

  it('report --csv: one row per call (pending too) with number, extension, key, metadata echoed back, SIP status, times and survey answers', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const run = await dialerInProcess(['report', '--campaign', 'spring', '--csv']);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    const rows = parse(run.stdout, { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(3);
    const header = Object.keys(rows[0] ?? {});
    expect(header.slice(0, 18)).toEqual([
      'call_id', 'campaign_id', 'phone_number', 'extension', 'key', 'outcome', 'state', 'reason', 'attempts', 'sip_status_code', 'sip_status',
      'enqueued_at', 'first_attempt_at', 'last_attempt_at', 'ended_at', 'duration_s', 'transfer', 'summary',
    ]);
    // metadata columns as given (a name a fixed column has is prefixed), then one column per survey question
    expect(header.slice(18)).toEqual(['first_name', 'metadata.outcome', 'How likely are you to recommend us?', 'What should we improve?']);
    const byId = new Map(rows.map((r) => [r.call_id, r]));
    expect(byId.get(surveyed)).toMatchObject({
      phone_number: '+14155550301',
      key: 'crm-1',
      outcome: 'answered',
      reason: 'agent ended the call',
      duration_s: '42.4',
      ended_at: '2030-06-01T12:00:00.000Z',
      summary: 'Happy customer.',
      first_name: 'Ada',
      'metadata.outcome': 'x',
      'How likely are you to recommend us?': '9',
      'What should we improve?': 'Shorter, waiting "times"',
    });
    expect(byId.get(busy)).toMatchObject({ phone_number: '+16505550100', extension: '136', key: 'crm-2', outcome: 'busy', sip_status_code: '486', sip_status: 'Busy Here', first_name: "'=cmd()" });
    expect(byId.get(queued)).toMatchObject({ phone_number: '+14155550303', key: '', outcome: 'pending', state: 'queued', first_name: 'Cy' });
    expect(byId.get(queued)?.enqueued_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('report --json: every call with reason, survey answers, duration, key, metadata and timestamps, and when a waiting call is due and expires', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const run = await dialerInProcess(['report', '--campaign', 'spring', '--json']);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    const report = JSON.parse(run.stdout) as { calls: Record<string, unknown>[] };
    const call = report.calls.find((c) => c.callId === surveyed);
    expect(call).toMatchObject({
      phoneNumber: '+14155550301',
      key: 'crm-1',
      outcome: 'answered',
      reason: 'agent ended the call',
      durationS: 42.4,
      endedAt: '2030-06-01T12:00:00.000Z',
      metadata: { first_name: 'Ada', outcome: 'x' },
      surveyAnswers: [{ question: 'How likely are you to recommend us?', answer: '9' }, { question: 'What should we improve?', answer: 'Shorter, waiting "times"' }],
    });
    expect(report.calls.find((c) => c.callId === busy)).toMatchObject({ phoneNumber: '+16505550100', extension: '136', sipStatusCode: 486 });
    // the names `dialer call --json` uses (the API's due_at, expires_at), ISO 8601; left out for calls that have ended
    expect(report.calls.find((c) => c.callId === queued)).toMatchObject({ outcome: 'pending', dueAt: new Date(queuedStart).toISOString(), expiresAt: new Date(queuedExpiry).toISOString() });
    expect(call).not.toHaveProperty('dueAt');
    expect(call).not.toHaveProperty('expiresAt');
  });

  it('`call <id>` shows one call with its answers, summary and transcript, found without --campaign; `campaigns` lists them', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const [text, json, campaigns, unknown] = await Promise.all([
      dialerInProcess(['call', surveyed]),
      dialerInProcess(['call', busy, '--json']),
      dialerInProcess(['campaigns', '--json']),
      dialerInProcess(['call', 'c-does-not-exist']),
    ]);
    expect(text.code, text.stderr).toBe(EXIT.ok);
    expect(text.stdout).toContain(`call ${surveyed} in campaign spring`);
    expect(text.stdout).toMatch(/number\s+\+14155550301/);
    expect(text.stdout).toMatch(/key\s+crm-1/);
    expect(text.stdout).toMatch(/outcome\s+answered/);
    expect(text.stdout).toContain('survey       How likely are you to recommend us? → 9');
    expect(text.stdout).toMatch(/summary\s+Happy customer\./);
    expect(text.stdout).toContain('    callee: Hello?\n    agent: Hi Ada, a short survey.');
    expect(JSON.parse(json.stdout)).toMatchObject({ callId: busy, campaignId: 'spring', phoneNumber: '+16505550100', extension: '136', outcome: 'busy' });
    expect(JSON.parse(campaigns.stdout)).toEqual([{ campaign: 'spring', total: 3, pending: 1, ended: 2, paused: false }]);
    expect(unknown.code).toBe(EXIT.input);
    expect(unknown.stderr).toBe('dialer: no call "c-does-not-exist"\n');
  });
});

describe('exit codes that tell the truth', () => {
  it('report, cancel, pause and resume on an unknown campaign exit 2 naming the campaigns close to it; pause does not pre-pause it', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    await producer.enqueueCall({ phoneNumber: '+14155550401', campaignId: 'reminders-june' });
    const runs = await Promise.all([
      dialerInProcess(['report', '--campaign', 'reminders-jnue']),
      dialerInProcess(['cancel', '--campaign', 'reminders-jnue']),
      dialerInProcess(['pause', '--campaign', 'reminders-jnue']),
      dialerInProcess(['resume', '--campaign', 'reminders-jnue']),
    ]);
    for (const run of runs) {
      expect(run.code).toBe(EXIT.input);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe('dialer: no campaign "reminders-jnue"; did you mean reminders-june? (`dialer campaigns` lists them all)\n');
    }
    expect(await store.isPaused('reminders-jnue')).toBe(false);
    expect(await store.isPaused('reminders-june')).toBe(false);
  });

  it('cancel of call ids none of which the campaign has exits 2 naming them; with one it has, 0 still naming the others on stderr', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const { callId } = await producer.enqueueCall({ phoneNumber: '+14155550402', campaignId: 'cancel-ids', notBefore: Date.now() + 60 * 60 * 1000 });
    const unknown = await dialerInProcess(['cancel', 'c-nope', 'c-nope', '--campaign', 'cancel-ids']);
    expect(unknown.code).toBe(EXIT.input);
    expect(unknown.stderr).toBe('dialer: no call c-nope in campaign cancel-ids\n');
    const mixed = await dialerInProcess(['cancel', 'c-nope', callId, 'c-nada', '--campaign', 'cancel-ids']);
    expect(mixed.code).toBe(EXIT.ok);
    expect(mixed.stdout).toBe('canceled 1, in flight (not canceled) 0, already ended 0, unknown 2\n');
    expect(mixed.stderr).toBe('dialer: no call c-nope, c-nada in campaign cancel-ids\n');
  });

  it('an import exits 0 when all rows went in, 3 when some were rejected, 2 when all were', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const file = async (name: string, text: string) => {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    };
    const [all, some, none] = await Promise.all([
      file('all.csv', 'phone_number\n+14155550501\n+14155550502\n'),
      file('some.csv', 'phone_number\n+14155550503\nnope\n'),
      file('none.csv', 'phone_number\nnope\n4155550504\n'),
    ]);
    const [allRun, someRun, noneRun] = await Promise.all([
      dialerInProcess(['import', all, '--campaign', 'imports']),
      dialerInProcess(['import', some, '--campaign', 'imports']),
      dialerInProcess(['import', none, '--campaign', 'imports']),
    ]);
    expect(allRun.code).toBe(EXIT.ok);
    expect(someRun.code).toBe(EXIT.partial);
    expect(someRun.stdout).toContain('rejected: 1\n  line 3: not a valid phone number: "nope" (it has no digits)');
    expect(noneRun.code).toBe(EXIT.input);
    expect(noneRun.stdout).toContain('enqueued: 0');
  });

  it('the same --key with the same number and metadata gives the same call id; with another number it exits 2 and says why', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const first = await dialerInProcess(['enqueue', '+14155550601', '--campaign', 'keys', '--key', 'order-9', '--metadata', '{"a":1}']);
    const [same, other] = await Promise.all([
      dialerInProcess(['enqueue', '+1 415 555 0601', '--campaign', 'keys', '--key', 'order-9', '--metadata', '{"a":1}']),
      dialerInProcess(['enqueue', '+14155550602', '--campaign', 'keys', '--key', 'order-9', '--metadata', '{"a":1}']),
    ]);
    expect(first.code).toBe(EXIT.ok);
    expect(same).toMatchObject({ code: EXIT.ok, stdout: first.stdout });
    expect(other.code).toBe(EXIT.input);
    expect(other.stderr).toMatch(/^dialer: key "order-9" already names call k-\w+ in campaign keys with number \+14155550601, not \+14155550602: use a new key for a different call\n$/);
  });

  it('every command says the same one line and exits 4 when Redis cannot be reached (no stack, no raw ECONNREFUSED line)', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const away = { REDIS_URL: 'redis://127.0.0.1:1' };
    const csv = join(dir, 'away.csv');
    await writeFile(csv, 'phone_number\n+14155550701\n');
    const runs = await Promise.all([
      dialer(['report', '--campaign', 'spring'], away),
      dialer(['enqueue', '+14155550701'], away),
      dialer(['import', csv, '--campaign', 'x'], away),
      dialer(['campaigns'], away),
      dialer(['call', 'c-1'], away),
      dialer(['pause', '--campaign', 'spring'], away),
      dialer(['dnc', 'list'], away),
      dialer(['purge', '--campaign', 'spring'], away),
    ]);
    for (const run of runs) {
      expect(run.code).toBe(EXIT.unavailable);
      expect(run.stderr).toBe('dialer: cannot reach Redis at 127.0.0.1:1 (ECONNREFUSED): start Redis there, or set REDIS_URL to where it runs\n');
    }
    // the demo starts a Redis of its own only when REDIS_URL is unset; a REDIS_URL that does not answer is exit 4 too
    const demo = await dialer(['demo'], away);
    expect(demo.code).toBe(EXIT.unavailable);
    expect(demo.stderr).toBe('dialer: REDIS_URL is set to redis://127.0.0.1:1 but no Redis answers there\n');
  });
});
