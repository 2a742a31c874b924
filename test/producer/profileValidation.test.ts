/**
 * A call naming an agent profile the agent does not have is refused at enqueue, like a bad number: the library
 * rejects it (the others go on), `dialer enqueue` and `dialer import` exit 2 with one line naming the known profiles
 * and enqueue nothing. The catalog is read as the agent reads it (AGENT_PROFILES_FILE, else profiles/profiles.json).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProfiles } from '../../src/agent/profiles.js';
import { CallStore } from '../../src/core/callStore.js';
import { InvalidInputError } from '../../src/core/errors.js';
import { CALLS_QUEUE, type CallJob } from '../../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { systemClock } from '../../src/core/time.js';
import { enqueueCall, enqueueCalls } from '../../src/producer/enqueueCalls.js';
import { runCliInProcess as runCli, type CliRun } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const url = testRedisUrl();
const prefix = uniquePrefix('profile-validation');
const SHIPPED = 'known: default, survey, support-line, warm-handoff';
/** Each CLI run starts node with tsx: tens of seconds on a loaded two-core machine. */
const CLI_TEST_TIMEOUT_MS = 120_000;
let connection: Redis;
let queue: Queue<CallJob>;
let store: CallStore;
let dir: string;

beforeAll(async () => {
  connection = createProducerConnection(url);
  await waitUntilReady(connection);
  queue = new Queue<CallJob>(CALLS_QUEUE, { connection, prefix });
  store = new CallStore(connection, prefix, systemClock);
  dir = await mkdtemp(join(tmpdir(), 'dialer-profiles-'));
});

afterAll(async () => {
  await queue.close();
  await closeConnection(connection);
  await deleteKeysWithPrefix(url, prefix);
  await rm(dir, { recursive: true, force: true });
});

const options = () => ({ connection, prefix, maxAttempts: 3 });

/** Nothing of the campaign reached Redis: no record, no job. */
async function expectNothingEnqueued(campaignId: string): Promise<void> {
  expect(await store.callIds(campaignId)).toEqual([]);
  const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized', 'active', 'completed', 'failed']);
  expect(jobs.filter((j) => j.data.campaignId === campaignId)).toEqual([]);
}

describe('the library', () => {
  it('rejects calls naming a profile the agent lacks (own keys only: constructor, __proto__), with the known ones; the rest go on', async () => {
    const summary = await enqueueCalls(
      [
        { phoneNumber: '+14157000001', campaignId: 'prof-lib', agentProfile: 'no-such-profile' },
        { phoneNumber: '+14157000002', campaignId: 'prof-lib', agentProfile: 'constructor' },
        { phoneNumber: '+14157000003', campaignId: 'prof-lib', agentProfile: '__proto__' },
        { phoneNumber: '+14157000004', campaignId: 'prof-lib', agentProfile: 'survey' },
        { phoneNumber: '+14157000005', campaignId: 'prof-lib' },
      ],
      options(),
    );
    expect(summary.rejected).toEqual([
      { index: 0, reason: `unknown agent profile "no-such-profile" (${SHIPPED})` },
      { index: 1, reason: `unknown agent profile "constructor" (${SHIPPED})` },
      { index: 2, reason: `unknown agent profile "__proto__" (${SHIPPED})` },
    ]);
    expect(summary.enqueued.map((e) => e.index)).toEqual([3, 4]);
    expect(await store.callIds('prof-lib')).toHaveLength(2);
  });

  it('enqueueCall throws InvalidInputError and enqueues nothing; a catalog can be given instead of the agent file', async () => {
    await expect(enqueueCall({ phoneNumber: '+14157000011', campaignId: 'prof-one', agentProfile: 'no-such-profile' }, options())).rejects.toThrow(
      InvalidInputError,
    );
    await expectNothingEnqueued('prof-one');
    const profiles = parseProfiles({ sales: { instructions: 'Sell.' } });
    await expect(enqueueCall({ phoneNumber: '+14157000012', campaignId: 'prof-one', agentProfile: 'survey' }, { ...options(), profiles })).rejects.toThrow(
      'unknown agent profile "survey" (known: sales)',
    );
    const { callId } = await enqueueCall({ phoneNumber: '+14157000013', campaignId: 'prof-one', agentProfile: 'sales' }, { ...options(), profiles });
    expect((await queue.getJob(callId))?.data.agentProfile).toBe('sales');
  });
});

describe('the command line', () => {
  const env = (extra: Record<string, string> = {}) => ({ REDIS_URL: url, QUEUE_PREFIX: prefix, ...extra });

  function expectRefused(run: CliRun, reason: string): void {
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`dialer: ${reason}\n`);
  }

  it('enqueue --profile no-such-profile exits 2 naming the known profiles, and enqueues nothing', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const run = await runCli(['enqueue', '+14157000021', '--campaign', 'prof-cli', '--profile', 'no-such-profile'], env());
    expectRefused(run, `unknown agent profile "no-such-profile" (${SHIPPED})`);
    await expectNothingEnqueued('prof-cli');
  });

  it("import --profile reads the agent's AGENT_PROFILES_FILE: a name it lacks refuses the whole file, one it has is used", { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const profilesFile = join(dir, 'profiles.json');
    await writeFile(profilesFile, JSON.stringify({ sales: { instructions: 'Sell.' } }));
    const csv = join(dir, 'calls.csv');
    await writeFile(csv, 'phone_number,first_name\n+14157000031,Ada\n+14157000032,Bo\n');
    const refused = await runCli(['import', csv, '--campaign', 'prof-import', '--profile', 'survey'], env({ AGENT_PROFILES_FILE: profilesFile }));
    expectRefused(refused, 'unknown agent profile "survey" (known: sales)');
    await expectNothingEnqueued('prof-import');

    const imported = await runCli(['import', csv, '--campaign', 'prof-import', '--profile', 'sales'], env({ AGENT_PROFILES_FILE: profilesFile }));
    expect(imported.code).toBe(0);
    expect(await store.callIds('prof-import')).toHaveLength(2);
  });
});
