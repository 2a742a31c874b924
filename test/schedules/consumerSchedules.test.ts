/**
 * Schedule firings run inside `dialer consumer`: no extra process. Two consumers side by side fire each firing once
 * (BullMQ hands each firing's job to one worker; the calls' keys come from the firing time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallSchedules } from '../../src/schedules/callSchedules.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { startCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';

let p: TestPipeline;
let schedules: CallSchedules;

beforeAll(async () => {
  // no in-process workers: the two CLI consumers under test process the firings (and dial their calls)
  p = await startTestPipeline('consumer-schedules', { dialers: 0, network: { default: { type: 'busy', afterMs: 10 } } });
  // fires every second to watch firings quickly: a pattern the CLI and API refuse (at most once a minute)
  schedules = new CallSchedules(p.redis, p.config.queuePrefix, { allowSubMinute: true });
});
afterAll(async () => {
  await schedules.close();
  await p.close();
});

describe('schedules in dialer consumer', () => {
  it('fires a schedule from two consumers, each firing time enqueued once', async () => {
    const campaignId = 'consumer-tick';
    await schedules.upsert({ id: 'consumer-tick', cron: '* * * * * *', campaign_id: campaignId, calls: [{ phone_number: '+14155550177' }] });
    const consumers = [startCli(['consumer'], p.env), startCli(['consumer'], p.env)];
    try {
      const calls = async () => (await p.store.list(campaignId)).length;
      await waitFor(async () => ((await calls()) >= 4 ? true : undefined), 30_000, 'four firings');
      await schedules.remove('consumer-tick');
    } finally {
      for (const c of consumers) c.child.kill('SIGTERM');
      const runs = await Promise.all(consumers.map((c) => c.done));
      for (const run of runs) expect(run.code, run.stderr).toBe(0);
    }
    const records = await p.store.list(campaignId);
    const keys = await p.store.idempotencyKeys(campaignId, records.map((r) => r.callId));
    const firings = [...keys.values()].map((k) => Number(k.split(':')[2]));
    expect(firings).toHaveLength(records.length);
    expect(new Set(firings).size).toBe(records.length); // one call per firing time, none doubled
  }, 90_000);
});
