/**
 * Numbers as people write them, through the producer into Redis: regions, extensions (their own call identity, kept
 * on the job for the consumer's DTMF), and idempotency keys that refuse a conflicting re-use.
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CallStore } from '../../src/core/callStore.js';
import { InvalidInputError } from '../../src/core/errors.js';
import type { CallJob } from '../../src/core/queues.js';
import { keyedCallId, phoneNumberKey } from '../../src/producer/callIds.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { useProducerFixture } from '../helpers/producerFixture.js';
import { uniquePrefix } from '../helpers/testRedis.js';

const prefix = uniquePrefix('numbers');
let connection: Redis;
let producer: CallProducer;
let queue: Queue<CallJob>;
let store: CallStore;

useProducerFixture(prefix, 3, (fixture) => {
  ({ connection, producer, queue, store } = fixture);
});

describe('extensions', () => {
  it('keeps the extension on the job and in the record, and two extensions of one line are two calls', async () => {
    const summary = await producer.enqueueCalls([
      { phoneNumber: '+1 650 555 0100 #136', campaignId: 'ext', dedupeByNumber: true },
      { phoneNumber: '+1 650 555 0100 x138', campaignId: 'ext', dedupeByNumber: true },
      { phoneNumber: '+1 650 555 0100;ext=138', campaignId: 'ext', dedupeByNumber: true }, // same as the one above
      { phoneNumber: '+1 650 555 0100', campaignId: 'ext', dedupeByNumber: true }, // the main line is a third call
    ]);
    expect(summary.rejected).toEqual([]);
    expect(summary.enqueued.map((e) => e.index)).toEqual([0, 1, 3]);
    expect(summary.duplicates).toEqual([{ index: 2, callId: keyedCallId('ext', phoneNumberKey('+16505550100', '138')) }]);
    const [a, b, main] = summary.enqueued.map((e) => e.callId);
    expect(new Set([a, b, main]).size).toBe(3);
    expect(main).toBe(keyedCallId('ext', phoneNumberKey('+16505550100'))); // ids of numbers without extension are unchanged
    expect((await queue.getJob(a ?? ''))?.data).toMatchObject({ phoneNumber: '+16505550100', extension: '136' });
    expect((await queue.getJob(main ?? ''))?.data.extension).toBeUndefined();
    expect((await store.get('ext', b ?? ''))?.phoneNumber).toBe('+16505550100;ext=138');
  });
});

describe('regions', () => {
  it('reads national numbers in the request region, else the producer default, and refuses them without either', async () => {
    const gb = new CallProducer({ connection, prefix, maxAttempts: 3, defaultRegion: 'GB' });
    try {
      const summary = await gb.enqueueCalls([
        { phoneNumber: '020 7946 0958', campaignId: 'regions' },
        { phoneNumber: '(415) 555-0125', campaignId: 'regions', region: 'US' },
        { phoneNumber: '001-415-555-0127', campaignId: 'regions' },
        { phoneNumber: '4155550123', campaignId: 'regions', region: 'XX' },
      ]);
      const numbers = await Promise.all(summary.enqueued.map(async (e) => (await queue.getJob(e.callId))?.data.phoneNumber));
      expect(numbers).toEqual(['+442079460958', '+14155550125', '+14155550127']);
      expect(summary.rejected).toEqual([{ index: 3, reason: expect.stringMatching(/region must be a two-letter country code/) }]);
    } finally {
      await gb.close();
    }
    const none = await producer.enqueueCalls([{ phoneNumber: '4155550123', campaignId: 'regions' }]);
    expect(none.rejected).toEqual([{ index: 0, reason: expect.stringContaining('"4155550123" (no country code: add +<country code>') }]);
  });
});

describe('idempotency keys', () => {
  it('gives the same call id for the same key, number and metadata (any key order), and refuses a conflicting re-use', async () => {
    const first = await producer.enqueueCall({ phoneNumber: '+14156000002', campaignId: 'keys', key: 'order-7', metadata: { a: 1, b: 'x' } });
    const same = await producer.enqueueCall({ phoneNumber: '+1 415 600 0002', campaignId: 'keys', key: 'order-7', metadata: { b: 'x', a: 1 } });
    expect(same).toEqual({ callId: first.callId, duplicate: true });

    const otherNumber = producer.enqueueCall({ phoneNumber: '+14156000003', campaignId: 'keys', key: 'order-7', metadata: { a: 1, b: 'x' } });
    await expect(otherNumber).rejects.toThrow(InvalidInputError);
    await expect(
      producer.enqueueCall({ phoneNumber: '+14156000003', campaignId: 'keys', key: 'order-7', metadata: { a: 1, b: 'x' } }),
    ).rejects.toThrow(`key "order-7" already names call ${first.callId} in campaign keys with number +14156000002, not +14156000003`);
    await expect(producer.enqueueCall({ phoneNumber: '+14156000002', campaignId: 'keys', key: 'order-7', metadata: { a: 2, b: 'x' } })).rejects.toThrow(
      /with metadata \{"a":1,"b":"x"\}, not \{"a":2,"b":"x"\}/,
    );
    await expect(producer.enqueueCall({ phoneNumber: '+14156000002 x12', campaignId: 'keys', key: 'order-7', metadata: { a: 1, b: 'x' } })).rejects.toThrow(
      /number \+14156000002, not \+14156000002;ext=12/,
    );
    // the call the key named is untouched
    expect((await queue.getJob(first.callId))?.data).toMatchObject({ phoneNumber: '+14156000002', metadata: { a: 1, b: 'x' } });
    expect((await store.counters('keys')).total).toBe(1);
  });

  it('refuses a conflicting key within one batch too, and leaves number-keyed rows as plain duplicates', async () => {
    const summary = await producer.enqueueCalls([
      { phoneNumber: '+14156100001', campaignId: 'keys-batch', key: 'k1' },
      { phoneNumber: '+14156100002', campaignId: 'keys-batch', key: 'k1' },
      { phoneNumber: '+14156100001', campaignId: 'keys-batch', key: 'k1' },
      { phoneNumber: '+14156100003', campaignId: 'keys-batch', dedupeByNumber: true, metadata: { name: 'Ann' } },
      { phoneNumber: '+14156100003', campaignId: 'keys-batch', dedupeByNumber: true, metadata: { name: 'Anne' } },
    ]);
    expect(summary.enqueued.map((e) => e.index)).toEqual([0, 3]);
    expect(summary.duplicates.map((e) => e.index)).toEqual([2, 4]);
    expect(summary.rejected).toEqual([
      {
        index: 1,
        reason: expect.stringMatching(/^key "k1" already names call k-\w+ in campaign keys-batch with number \+14156100001, not \+14156100002/),
        keyConflict: { field: 'number', withoutStored: 'key "k1" already names another call in campaign keys-batch, with a different number: use a new key for a different call' },
      },
    ]);
  });
});
