import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CallStore } from '../../src/core/callStore.js';
import { InvalidInputError } from '../../src/core/errors.js';
import type { CallJob } from '../../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { SECOND, systemClock, type Clock } from '../../src/core/time.js';
import { keyedCallId, phoneNumberKey } from '../../src/producer/callIds.js';
import { CallProducer, ENQUEUE_CHUNK_SIZE, enqueueCall, enqueueCalls } from '../../src/producer/enqueueCalls.js';
import { InFlight } from '../../src/producer/inFlight.js';
import { useProducerFixture } from '../helpers/producerFixture.js';
import { testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const url = testRedisUrl();
const prefix = uniquePrefix('enqueue');
const MAX_ATTEMPTS = 3;
let connection: Redis;
let producer: CallProducer;
let queue: Queue<CallJob>;
let store: CallStore;

/** A clock the test sets; the producer computes delays from it. */
class FixedClock implements Clock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
  // waits run on the wall clock
  readonly sleep = systemClock.sleep;
  readonly setTimer = systemClock.setTimer;
}

useProducerFixture(prefix, MAX_ATTEMPTS, (fixture) => {
  ({ connection, producer, queue, store } = fixture);
});

describe('enqueueCall', () => {
  it('normalises the number to E.164, creates the queued record and a job whose id is the call id', async () => {
    const { callId, duplicate } = await producer.enqueueCall({
      phoneNumber: ' +1 (415) 200-0001 ',
      campaignId: 'norm',
      metadata: { first_name: 'Ada', vip: true, score: 3, note: null },
      agentProfile: 'survey',
    });
    expect(duplicate).toBe(false);
    const job = await queue.getJob(callId);
    expect(job?.data).toMatchObject({
      callId,
      campaignId: 'norm',
      phoneNumber: '+14152000001',
      metadata: { first_name: 'Ada', vip: true, score: 3, note: null },
      agentProfile: 'survey',
    });
    expect(job?.opts.attempts).toBe(MAX_ATTEMPTS);
    expect(await job?.getState()).toBe('waiting');
    const record = await store.get('norm', callId);
    expect(record).toMatchObject({ callId, campaignId: 'norm', phoneNumber: '+14152000001', state: 'queued', attempts: 0 });
    expect((await store.counters('norm')).total).toBe(1);
    expect(await store.campaigns()).toContain('norm');
  });

  it.each([
    ['no country code', '4152000001'],
    ['too short', '+1415'],
    ['letters', 'call me maybe'],
    ['empty', ''],
    ['not a real number plan', '+999123456789'],
  ])('rejects a bad number (%s) with InvalidInputError and enqueues nothing', async (_label, phoneNumber) => {
    const before = await queue.count();
    await expect(producer.enqueueCall({ phoneNumber, campaignId: 'bad' })).rejects.toBeInstanceOf(InvalidInputError);
    expect(await queue.count()).toBe(before);
    expect((await store.counters('bad')).total).toBe(0);
  });

  it('rejects bad metadata and a bad campaign id without enqueuing', async () => {
    const before = await queue.count();
    const nested = { phoneNumber: '+14152000002', metadata: { nested: { a: 1 } } } as unknown as Parameters<CallProducer['enqueueCall']>[0];
    await expect(producer.enqueueCall(nested)).rejects.toThrow(/metadata/);
    await expect(producer.enqueueCall({ phoneNumber: '+14152000002', campaignId: 'has:colon' })).rejects.toThrow(/campaignId/);
    expect(await queue.count()).toBe(before);
  });

  it('enqueues the same idempotency key once: one job, one record, the campaign total counted once', async () => {
    const first = await producer.enqueueCall({ phoneNumber: '+14152000003', campaignId: 'idem', key: 'order-42' });
    // the same request again (a conflicting re-use is refused: numbersAndKeys.test.ts)
    const second = await producer.enqueueCall({ phoneNumber: '+1 415 200 0003', campaignId: 'idem', key: 'order-42' });
    const third = await enqueueCall({ phoneNumber: '+14152000003', campaignId: 'idem', key: 'order-42' }, { connection, prefix, maxAttempts: MAX_ATTEMPTS });
    expect(first).toEqual({ callId: keyedCallId('idem', 'order-42'), duplicate: false });
    expect(second).toEqual({ callId: first.callId, duplicate: true });
    expect(third).toEqual({ callId: first.callId, duplicate: true });
    const jobs = (await queue.getJobs(['waiting', 'delayed'])).filter((j) => j.data.campaignId === 'idem');
    expect(jobs.map((j) => j.id)).toEqual([first.callId]);
    expect(jobs[0]?.data.metadata).toEqual({});
    expect(await connection.llen(store.keys.campaignCalls('idem'))).toBe(1);
    expect((await store.counters('idem')).total).toBe(1);
    // the same key in another campaign is another call
    const other = await producer.enqueueCall({ phoneNumber: '+14152000003', campaignId: 'idem-2', key: 'order-42' });
    expect(other.callId).not.toBe(first.callId);
  });

  it('keeps a keyed call\'s idempotency key on the record it creates, and writes nothing on a record that exists', async () => {
    const field = CallStore.IDEMPOTENCY_KEY_FIELD;
    const { callId } = await producer.enqueueCall({ phoneNumber: '+14152000006', campaignId: 'keyfield', key: 'crm-7' });
    const byNumber = await producer.enqueueCall({ phoneNumber: '+14152000007', campaignId: 'keyfield', dedupeByNumber: true });
    expect(await connection.hget(store.keys.callRecord('keyfield', callId), field)).toBe('crm-7');
    expect(await connection.hget(store.keys.callRecord('keyfield', byNumber.callId), field)).toBeNull();
    // the same key again finds the record: it is not written (created in one script with its key, never afterwards)
    await connection.hdel(store.keys.callRecord('keyfield', callId), field);
    expect(await producer.enqueueCall({ phoneNumber: '+14152000006', campaignId: 'keyfield', key: 'crm-7' })).toEqual({ callId, duplicate: true });
    expect(await connection.hget(store.keys.callRecord('keyfield', callId), field)).toBeNull();
    expect(await store.idempotencyKeys('keyfield', [callId, byNumber.callId])).toEqual(new Map());
  });

  it('does not re-add the job of a keyed call that is already past queued (it would ring again)', async () => {
    const { callId } = await producer.enqueueCall({ phoneNumber: '+14152000004', campaignId: 'past', key: 'k' });
    await connection.hset(store.keys.callRecord('past', callId), 'state', 'terminal');
    await (await queue.getJob(callId))?.remove();
    const again = await producer.enqueueCall({ phoneNumber: '+14152000004', campaignId: 'past', key: 'k' });
    expect(again).toEqual({ callId, duplicate: true });
    expect(await queue.getJob(callId)).toBeUndefined();
  });

  it('re-adds the job of a call still queued whose job was lost (crash between record and job)', async () => {
    const { callId } = await producer.enqueueCall({ phoneNumber: '+14152000005', campaignId: 'lost', key: 'k' });
    await (await queue.getJob(callId))?.remove();
    const again = await producer.enqueueCall({ phoneNumber: '+14152000005', campaignId: 'lost', key: 'k' });
    expect(again).toEqual({ callId, duplicate: true });
    expect(await (await queue.getJob(callId))?.getState()).toBe('waiting');
    expect((await store.counters('lost')).total).toBe(1);
  });

  it('delays a call to notBefore, measured from the injected clock; a past notBefore means now', async () => {
    const clock = new FixedClock(Date.now());
    const timed = new CallProducer({ connection, prefix, maxAttempts: MAX_ATTEMPTS, clock });
    try {
      const later = await timed.enqueueCall({ phoneNumber: '+14152000006', campaignId: 'delay', notBefore: clock.ms + 90 * SECOND });
      const at = await timed.enqueueCall({ phoneNumber: '+14152000007', campaignId: 'delay', notBefore: new Date(clock.ms + 3600 * SECOND) });
      const past = await timed.enqueueCall({ phoneNumber: '+14152000008', campaignId: 'delay', notBefore: clock.ms - SECOND });
      const laterJob = await queue.getJob(later.callId);
      expect(await laterJob?.getState()).toBe('delayed');
      expect(laterJob?.opts.delay).toBe(90 * SECOND);
      expect(laterJob?.data.enqueuedAt).toBe(clock.ms);
      const atJob = await queue.getJob(at.callId);
      expect(await atJob?.getState()).toBe('delayed');
      expect(atJob?.opts.delay).toBe(3600 * SECOND);
      expect(await (await queue.getJob(past.callId))?.getState()).toBe('waiting');
      expect((await store.get('delay', later.callId))?.createdAt).toBe(clock.ms);
    } finally {
      await timed.close();
    }
  });

  it('carries expiresAt into the job', async () => {
    const expiresAt = Date.now() + 3600 * SECOND;
    const { callId } = await producer.enqueueCall({ phoneNumber: '+14152000009', campaignId: 'exp', expiresAt: new Date(expiresAt) });
    expect((await queue.getJob(callId))?.data.expiresAt).toBe(expiresAt);
  });
});

describe('enqueueCalls', () => {
  it('enqueues good rows and reports bad ones and duplicates by index, across chunks', async () => {
    const n = ENQUEUE_CHUNK_SIZE * 2 + 17; // three chunks, two in flight at once
    const requests = Array.from({ length: n }, (_, i) => ({
      phoneNumber: `+1415300${String(i).padStart(4, '0')}`,
      campaignId: 'batch',
      metadata: { row: i },
    }));
    requests[5] = { phoneNumber: 'garbage', campaignId: 'batch', metadata: { row: 5 } };
    requests[ENQUEUE_CHUNK_SIZE + 1] = { phoneNumber: '+1415', campaignId: 'batch', metadata: { row: ENQUEUE_CHUNK_SIZE + 1 } };
    const keyed = [
      { phoneNumber: '+14153009990', campaignId: 'batch', key: 'dup' },
      { phoneNumber: '+1 415 300 9990', campaignId: 'batch', key: 'dup' }, // same chunk, same call
    ];
    const lateDup = { phoneNumber: '+14153009990', campaignId: 'batch', key: 'dup' }; // another chunk
    const all = [...keyed, ...requests, lateDup];
    const progress: number[] = [];
    const summary = await enqueueCalls(all, { connection, prefix, maxAttempts: MAX_ATTEMPTS, onProgress: (d) => progress.push(d) });

    expect(summary.rejected.map((r) => r.index)).toEqual([2 + 5, 2 + ENQUEUE_CHUNK_SIZE + 1]);
    expect(summary.rejected[0]?.reason).toMatch(/not a valid phone number/);
    expect(summary.duplicates.map((d) => d.index)).toEqual([1, all.length - 1]);
    expect(summary.enqueued).toHaveLength(all.length - 4);
    expect(summary.enqueued[0]).toEqual({ index: 0, callId: keyedCallId('batch', 'dup') });
    expect(progress.at(-1)).toBe(all.length);
    expect((await store.counters('batch')).total).toBe(all.length - 4);
    expect(await connection.llen(store.keys.campaignCalls('batch'))).toBe(all.length - 4);
    const first = summary.enqueued[1];
    expect((await queue.getJob(first?.callId ?? ''))?.data.phoneNumber).toBe('+14153000000');
  });

  it('dedupes by normalised number when asked and no key is given', async () => {
    const summary = await producer.enqueueCalls([
      { phoneNumber: '+14153100001', campaignId: 'bynum', dedupeByNumber: true },
      { phoneNumber: '+1 415 310 0001', campaignId: 'bynum', dedupeByNumber: true },
      { phoneNumber: '+14153100001', campaignId: 'bynum', dedupeByNumber: true, key: 'explicit' },
      { phoneNumber: '+14153100001', campaignId: 'bynum' },
    ]);
    expect(summary.enqueued.map((e) => e.index)).toEqual([0, 2, 3]);
    expect(summary.enqueued[0]?.callId).toBe(keyedCallId('bynum', phoneNumberKey('+14153100001')));
    expect(summary.duplicates).toEqual([{ index: 1, callId: summary.enqueued[0]?.callId }]);
  });

  it('fails loudly, after every started chunk settled, when Redis refuses', async () => {
    const broken = createProducerConnection(url);
    broken.on('error', () => undefined); // the failed writes below are the point
    await waitUntilReady(broken);
    const failing = new CallProducer({ connection: broken, prefix, maxAttempts: MAX_ATTEMPTS });
    try {
      await broken.quit();
      const requests = Array.from({ length: 2500 }, (_, i) => ({ phoneNumber: `+1415320${String(i).padStart(4, '0')}`, campaignId: 'down' }));
      await expect(failing.enqueueCalls(requests)).rejects.toThrow();
    } finally {
      await failing.close();
      await closeConnection(broken);
    }
  });
});

describe('InFlight', () => {
  it('keeps at most `limit` tasks running and reports the first failure after all started tasks settle', async () => {
    const inFlight = new InFlight(2);
    let running = 0;
    let peak = 0;
    const finished: number[] = [];
    const task = (i: number, fail = false) => async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 10 + (i % 3) * 5));
      running--;
      finished.push(i);
      if (fail) throw new Error(`task ${i} failed`);
    };
    const started: boolean[] = [];
    for (let i = 0; i < 8; i++) started.push(await inFlight.run(task(i, i === 3)));
    await expect(inFlight.drain()).rejects.toThrow('task 3 failed');
    expect(peak).toBe(2);
    expect(running).toBe(0);
    expect(started.indexOf(false)).toBeGreaterThan(3); // nothing new starts once a task failed
    expect(finished).toHaveLength(started.filter(Boolean).length);
  });
});
