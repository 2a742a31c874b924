/** An attempt's end that meets a lost connection is written again (CallStore.writeReplicated); one closed for good is not. */
import { afterAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { waitUntilReady } from '../../src/core/redisConnection.js';
import { connectTestRedis, deleteKeysWithPrefix, uniquePrefix } from '../helpers/testRedis.js';
import { TestClock } from '../helpers/testClock.js';
import { waitFor } from '../helpers/waitFor.js';

const prefix = uniquePrefix('attempt-end-retry');
const admin = connectTestRedis();

afterAll(async () => {
  await deleteKeysWithPrefix(admin, prefix);
  await admin.quit();
});

describe("an attempt's end on a connection this process closed", () => {
  it('fails at once instead of being written again every second for two minutes (a forced stop under running jobs)', async () => {
    const connection = connectTestRedis();
    const clock = new TestClock();
    const retries: string[] = [];
    const store = new CallStore(connection, prefix, clock, { onAttemptEndRetry: (err) => retries.push(err.message) });
    const campaignId = 'end-closed';
    const call = { callId: 'closed-1', campaignId, phoneNumber: '+14155557991', metadata: {} };
    await waitUntilReady(connection);
    await store.createCalls(campaignId, [call]);
    await store.beginAttempt(call, 1, 'call-closed-1-1', { dialSent: true });
    await connection.quit();

    let settled: string | undefined;
    store.endAttempt(campaignId, call.callId, 1, 'dialing', { result: 'declined', kind: 'final', sipStatusCode: 603 }).then(
      () => (settled = 'written'),
      (err: unknown) => (settled = err instanceof Error ? err.message : String(err)),
    );
    // settled, or waiting on the clock to write it again (time on this clock passes only when the test moves it)
    await waitFor(() => (settled !== undefined || clock.pending > 0 ? true : undefined));
    expect(retries).toEqual([]);
    expect(clock.pending).toBe(0);
    expect(settled).toBe('Connection is closed.');
  });
});
