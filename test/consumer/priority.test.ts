/** Call priorities: a bulk campaign given a priority waits behind calls enqueued later without one. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDialWorker } from '../../src/consumer/dialWorker.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline('priority', { dialers: 0, network: { default: { type: 'answer', afterMs: 10, callee: { kind: 'human' } } } });
});

afterAll(async () => {
  await p.close();
});

describe('call priority', () => {
  it('calls with a priority number are dialed after every call without one, lower numbers first', async () => {
    const bulk = ['+14155559001', '+14155559002'];
    for (const phoneNumber of bulk) await p.enqueue({ phoneNumber, campaignId: 'survey', priority: 10 });
    await p.enqueue({ phoneNumber: '+14155559003', campaignId: 'survey', priority: 5 });
    await p.enqueue({ phoneNumber: '+14155559004', campaignId: 'reminders' }); // pushed last, dialed first

    // One call at a time, so the dial order is the queue's order.
    const dialer = await startDialWorker({ config: loadConfig({ ...p.env, DIAL_CONCURRENCY: '1' }), logger: silentLogger });
    try {
      await waitFor(() => (p.sim.calls.length === 4 ? true : undefined), 15_000, 'four calls');
      expect(p.sim.calls.map((c) => c.phoneNumber)).toEqual(['+14155559004', '+14155559003', ...bulk]);
    } finally {
      await dialer.close(true);
    }
  });
});
