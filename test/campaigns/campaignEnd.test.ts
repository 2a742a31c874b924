/**
 * A campaign's `ends_at` bounds the start times its calls may be given: `enqueue --at` (and the API's, an import's
 * column) and `move` refuse a time after it, as they refuse one after the call's own expiry. Found by a breaker run:
 * both were accepted, and the call sat pending past the campaign's end. A campaign already ended takes no call at all,
 * not even one to ring now: it would only end `expired` once a consumer took it.
 */
import { describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { InvalidInputError } from '../../src/core/errors.js';
import { HOUR, MINUTE, systemClock } from '../../src/core/time.js';
import { cancelCalls } from '../../src/producer/cancelCalls.js';
import { moveCall } from '../../src/schedules/moveCall.js';
import { useProducerFixture, type ProducerFixture } from '../helpers/producerFixture.js';
import { runCliInProcess } from '../helpers/runCli.js';
import { testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const prefix = uniquePrefix('campaign-end');
let f: ProducerFixture;
/** Move-and-cancel pairs run at once: a breaker saw 3 of 8 such pairs over HTTP answer 500 before the fix. */
const RACES = 30;
useProducerFixture(prefix, 3, (fixture) => (f = fixture));

async function campaignEndingIn(id: string, ms: number): Promise<number> {
  const endsAt = new Date(Date.now() + ms);
  await new CampaignStore(f.connection, prefix, systemClock).create({ id, ends_at: endsAt.toISOString() });
  return endsAt.getTime();
}

describe('moving a call while it is being canceled', () => {
  it('answers that the call ended (or moves it first), never an error, when a cancel removes its job mid-move', async () => {
    const answers = new Set<string>();
    for (let i = 0; i < RACES; i++) {
      const { callId } = await f.producer.enqueueCall({ phoneNumber: `+1415555${String(1900 + i)}`, campaignId: 'move-race', notBefore: Date.now() + 30 * MINUTE });
      const target = { campaignId: 'move-race', callId };
      const [moved] = await Promise.all([moveCall(f.connection, prefix, systemClock, target, Date.now() + 10 * MINUTE), cancelCalls(f.connection, prefix, { campaignId: 'move-race', callIds: [callId] })]);
      answers.add(moved.status === 'moved' ? 'moved' : `${moved.status}: ${moved.status === 'not_movable' ? moved.why : ''}`);
      expect(await f.store.get('move-race', callId)).toMatchObject({ state: 'terminal', outcome: 'canceled' });
    }
    for (const answer of answers) expect(answer).toMatch(/^(moved|not_movable: it already ended as canceled|not_movable: its dial job is gone.*)$/);
  });
});

describe("a campaign's end bounds its calls' start times", () => {
  it('refuses to enqueue a call that would start after its campaign ends, and takes one that starts before', async () => {
    const endsAt = await campaignEndingIn('ends-enqueue', HOUR);
    const summary = await f.producer.enqueueCalls([
      { phoneNumber: '+14155550181', campaignId: 'ends-enqueue', notBefore: endsAt + MINUTE },
      { phoneNumber: '+14155550182', campaignId: 'ends-enqueue', notBefore: endsAt - MINUTE },
    ]);
    expect(summary.rejected).toEqual([{ index: 0, reason: `its start time (${new Date(endsAt + MINUTE).toISOString()}) is after campaign ends-enqueue ends (${new Date(endsAt).toISOString()})` }]);
    expect(summary.enqueued.map((e) => e.index)).toEqual([1]);
  });

  it('refuses to enqueue a call to ring now (or at a time already past) once its campaign has ended, through the library and the CLI alike', async () => {
    const endsAt = await campaignEndingIn('ended-enqueue', -MINUTE);
    const ended = `campaign ended-enqueue ended at ${new Date(endsAt).toISOString()}`;
    const summary = await f.producer.enqueueCalls([
      { phoneNumber: '+14155550184', campaignId: 'ended-enqueue' },
      { phoneNumber: '+14155550185', campaignId: 'ended-enqueue', notBefore: Date.now() - MINUTE },
      { phoneNumber: '+14155550186', campaignId: 'ended-enqueue', notBefore: Date.now() + MINUTE },
      // a campaign with no end in the same batch is not held back
      { phoneNumber: '+14155550187', campaignId: 'no-end' },
    ]);
    expect(summary.rejected).toEqual([0, 1, 2].map((index) => ({ index, reason: ended })));
    expect(summary.enqueued.map((e) => e.index)).toEqual([3]);
    expect(await f.store.callIds('ended-enqueue')).toEqual([]);

    const cli = await runCliInProcess(['enqueue', '+14155550188', '--campaign', 'ended-enqueue'], { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix });
    expect(cli).toMatchObject({ code: 2, stdout: '', stderr: `dialer: ${ended}\n` });
    expect(await f.store.callIds('ended-enqueue')).toEqual([]);
  });

  it('gives a keyed call sent again after its campaign ended the call it made before (a retry), and refuses only new calls', async () => {
    const campaigns = new CampaignStore(f.connection, prefix, systemClock);
    await campaigns.create({ id: 'ended-retry', ends_at: new Date(Date.now() + HOUR).toISOString() });
    const first = await f.producer.enqueueCall({ phoneNumber: '+14155550191', campaignId: 'ended-retry', key: 'appt-1' });
    const endsAt = Date.now() - MINUTE;
    await campaigns.update('ended-retry', { ends_at: new Date(endsAt).toISOString() });

    const summary = await f.producer.enqueueCalls([
      { phoneNumber: '+14155550191', campaignId: 'ended-retry', key: 'appt-1' },
      { phoneNumber: '+14155550192', campaignId: 'ended-retry', key: 'appt-2' },
      { phoneNumber: '+14155550193', campaignId: 'ended-retry', key: 'appt-1' },
    ]);
    expect(summary.duplicates).toEqual([{ index: 0, callId: first.callId }]);
    expect(summary.enqueued).toEqual([]);
    expect(summary.rejected).toEqual([
      { index: 1, reason: `campaign ended-retry ended at ${new Date(endsAt).toISOString()}` },
      // the same key with another number is the key conflict it was before the end
      expect.objectContaining({ index: 2, reason: expect.stringMatching(/^key "appt-1" already names call k-\w+ in campaign ended-retry/) }),
    ]);
    expect(await f.store.callIds('ended-retry')).toEqual([first.callId]);
  });

  it('refuses to move a call past its campaign end, and moves it within it', async () => {
    const endsAt = await campaignEndingIn('ends-move', HOUR);
    const { callId } = await f.producer.enqueueCall({ phoneNumber: '+14155550183', campaignId: 'ends-move', notBefore: Date.now() + 30 * MINUTE });
    const target = { campaignId: 'ends-move', callId };
    await expect(moveCall(f.connection, prefix, systemClock, target, endsAt + MINUTE)).rejects.toThrow(InvalidInputError);
    await expect(moveCall(f.connection, prefix, systemClock, target, endsAt + MINUTE)).rejects.toThrow(
      `--at: the new time is after campaign ends-move ends (${new Date(endsAt).toISOString()})`,
    );
    expect(await moveCall(f.connection, prefix, systemClock, target, endsAt - MINUTE)).toMatchObject({ status: 'moved' });
  });
});
