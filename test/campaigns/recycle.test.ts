/**
 * A campaign's recycle rule, end to end (simulator, dial worker, results worker): a call that ends busy is called
 * again after_s later as a new call, up to max_series series; other outcomes are not recycled.
 */
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { recycleKey, seriesOf } from '../../src/campaigns/recycle.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { SECOND, systemClock } from '../../src/core/time.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

const campaignId = 'recycled';
const AFTER_S = 1;
let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline('recycle', { env: { DIAL_MAX_ATTEMPTS: '1' } });
  p.sim.network.setBehavior('+14155550401', { type: 'busy' });
  p.sim.network.setBehavior('+14155550402', { type: 'not_found' });
  await new CampaignStore(p.redis, p.config.queuePrefix, systemClock).create({ id: campaignId, recycle: { outcomes: ['busy', 'no_answer'], after_s: AFTER_S, max_series: 3 } });
});
afterAll(async () => {
  await p.close();
});

/** Waits until the results worker has finished applying these calls' outcomes (their call-results jobs completed). */
async function resultsApplied(callIds: readonly string[]): Promise<void> {
  const results = new Queue(CALL_RESULTS_QUEUE, { connection: p.redis, prefix: p.config.queuePrefix });
  try {
    for (const callId of callIds) {
      await waitFor(async () => ((await results.getJobState(callId)) === 'completed' ? true : undefined), 10_000, `the result of ${callId} applied`);
    }
  } finally {
    await results.close();
  }
}

describe('recycle rule', () => {
  it('calls a busy number again after_s later as a new call, up to max_series series in all, and no further', async () => {
    const first = await p.enqueue({ phoneNumber: '+14155550401', campaignId, metadata: { first_name: 'Ann' } });
    const ended = async () => (await p.store.list(campaignId)).filter((r) => r.phoneNumber === '+14155550401' && r.state === 'terminal');
    await waitFor(async () => ((await ended()).length >= 3 ? true : undefined), 20_000, 'three series to end');
    // the results worker decides on recycling while it applies an outcome: once the last one's job completed, a
    // fourth series would exist
    await resultsApplied((await ended()).map((r) => r.callId));
    const records = (await p.store.list(campaignId)).filter((r) => r.phoneNumber === '+14155550401');
    expect(records).toHaveLength(3);
    const keys = await p.store.idempotencyKeys(campaignId, records.map((r) => r.callId));
    expect(records.map((r) => keys.get(r.callId))).toEqual([undefined, recycleKey(first, 2), recycleKey(first, 3)]);
    expect(records.map((r) => r.outcome)).toEqual(['busy', 'busy', 'busy']);
    expect(records.every((r) => r.metadata.first_name === 'Ann')).toBe(true);
    // each series rang after_s after the previous one ended
    for (let i = 1; i < records.length; i++) {
      const previousEnd = records[i - 1]?.endedAt ?? 0;
      const started = records[i]?.attemptLog[0]?.startedAt ?? 0;
      expect(started - previousEnd).toBeGreaterThanOrEqual(AFTER_S * SECOND - 50);
    }
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155550401')).toHaveLength(3);
  }, 40_000);

  it('leaves outcomes the rule does not name alone', async () => {
    const callId = await p.enqueue({ phoneNumber: '+14155550402', campaignId });
    expect((await p.waitForOutcome(campaignId, callId)).outcome).toBe('invalid_number');
    await resultsApplied([callId]);
    expect((await p.store.list(campaignId)).filter((r) => r.phoneNumber === '+14155550402')).toHaveLength(1);
  }, 20_000);

  it('reads the series from a recycled call key', () => {
    expect(seriesOf('c-1', undefined)).toEqual({ root: 'c-1', series: 1 });
    expect(seriesOf('k-9', 'appt-3')).toEqual({ root: 'k-9', series: 1 });
    expect(seriesOf('k-9', recycleKey('c-1', 4))).toEqual({ root: 'c-1', series: 4 });
  });
});
