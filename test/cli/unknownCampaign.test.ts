/**
 * Every command that acts on a campaign named by the person typing (purge, move, call, report, cancel, pause, resume)
 * refuses a campaign that does not exist with exit 2, naming it and the campaigns close to it, and does nothing; a
 * campaign exists when it has calls on record or a stored document (`campaign create`), so a defined campaign with no
 * calls yet is acted on, not refused. Run in-process (runCliInProcess): the exit code and lines are the command's own.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { CallStore } from '../../src/core/callStore.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { systemClock } from '../../src/core/time.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { runCliInProcess, type CliRun } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const url = testRedisUrl();
const prefix = uniquePrefix('unknown-campaign');
const env = { REDIS_URL: url, QUEUE_PREFIX: prefix };
/** README's exit code for refused input (an unknown campaign or call among it). */
const EXIT_INPUT = 2;
const HOUR_MS = 60 * 60 * 1000;
let connection: Redis;
let store: CallStore;
let producer: CallProducer;

const dialer = (args: string[]): Promise<CliRun> => runCliInProcess(args, env);

beforeAll(async () => {
  connection = createProducerConnection(url);
  await waitUntilReady(connection);
  store = new CallStore(connection, prefix, systemClock);
  producer = new CallProducer({ connection, prefix, maxAttempts: 3 });
  // calls on record in one campaign (ended, so purge has something to delete), a defined campaign without calls
  const { callId } = await producer.enqueueCall({ phoneNumber: '+14155550801', campaignId: 'reminders-june' });
  await store.applyTerminal({ callId, campaignId: 'reminders-june', outcome: 'busy', reason: 'busy', reportedBy: 'consumer', endedAt: Date.now() });
  await producer.enqueueCall({ phoneNumber: '+14155550802', campaignId: 'reminders-june', notBefore: Date.now() + HOUR_MS });
  await new CampaignStore(connection, prefix, systemClock).create({ id: 'survey-july' });
});

afterAll(async () => {
  await producer.close();
  await closeConnection(connection);
  await deleteKeysWithPrefix(url, prefix);
});

describe('a campaign that does not exist', () => {
  it('purge --campaign with a typo exits 2 naming it and the close campaigns, and purges nothing', async () => {
    const before = await store.counters('reminders-june');
    const run = await dialer(['purge', '--campaign', 'reminders-jnue']);
    expect(run.code).toBe(EXIT_INPUT);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('dialer: no campaign "reminders-jnue"; did you mean reminders-june? (`dialer campaigns` lists them all)\n');
    // with --before too; and a name close to nothing lists the campaigns there are
    const far = await dialer(['purge', '--campaign', 'zzz', '--before', '2030-01-01']);
    expect(far.code).toBe(EXIT_INPUT);
    expect(far.stderr).toBe('dialer: no campaign "zzz"; the campaigns are reminders-june, survey-july\n');
    expect(await store.counters('reminders-june')).toEqual(before);
  });

  it('move and call with --campaign naming no campaign exit 2 the same way', async () => {
    const [move, call] = await Promise.all([
      dialer(['move', 'c-any', '--campaign', 'reminders-jnue', '--delay', '1h']),
      dialer(['call', 'c-any', '--campaign', 'survey-jluy']),
    ]);
    expect(move.code).toBe(EXIT_INPUT);
    expect(move.stderr).toBe('dialer: no campaign "reminders-jnue"; did you mean reminders-june? (`dialer campaigns` lists them all)\n');
    expect(call.code).toBe(EXIT_INPUT);
    expect(call.stderr).toBe('dialer: no campaign "survey-jluy"; did you mean survey-july? (`dialer campaigns` lists them all)\n');
  });

  it('campaign show/update/pause/archive of a campaign that does not exist name the close ones; one with calls only is told how to define it', async () => {
    const runs = await Promise.all([
      dialer(['campaign', 'show', 'survey-jluy']),
      dialer(['campaign', 'update', 'survey-jluy', '--cps', '2']),
      dialer(['campaign', 'pause', 'survey-jluy']),
      dialer(['campaign', 'archive', 'survey-jluy']),
    ]);
    for (const run of runs) {
      expect(run.code).toBe(EXIT_INPUT);
      expect(run.stderr).toBe('dialer: no campaign "survey-jluy"; did you mean survey-july? (`dialer campaigns` lists them all)\n');
    }
    const labelOnly = await dialer(['campaign', 'show', 'reminders-june']);
    expect(labelOnly.code).toBe(EXIT_INPUT);
    expect(labelOnly.stderr).toBe('dialer: no campaign reminders-june (create it with `dialer campaign create reminders-june`)\n');
  });

  it('a defined campaign with no calls yet is acted on: pause, resume, cancel and purge exit 0', async () => {
    const pause = await dialer(['pause', '--campaign', 'survey-july']);
    expect(pause).toMatchObject({ code: 0, stdout: 'paused survey-july\n' });
    expect(await store.isPaused('survey-july')).toBe(true);
    expect(await dialer(['resume', '--campaign', 'survey-july'])).toMatchObject({ code: 0, stdout: 'resumed survey-july: 0 held calls released\n' });
    expect(await dialer(['cancel', '--campaign', 'survey-july'])).toMatchObject({ code: 0 });
    const purge = await dialer(['purge', '--campaign', 'survey-july']);
    expect(purge.code, purge.stderr).toBe(0);
    expect(purge.stdout).toMatch(/^purged 0 ended calls in 1 campaign/);
  });

  it('purge of a campaign that has calls still purges its ended calls (exit 0)', async () => {
    const run = await dialer(['purge', '--campaign', 'reminders-june']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^purged 1 ended call in 1 campaign, \d+ queue jobs? removed; in flight \(kept\) 1\n$/);
  });
});
