import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_BATCH_CALLS } from '../../src/api/schemas.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { importCsv } from '../../src/producer/importCsv.js';
import { keyedCallId, phoneNumberKey } from '../../src/producer/callIds.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { body, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-batch'), (f) => (api = f));

const batch = (campaign: string, payload: unknown, headers: Record<string, string> = {}) =>
  call(api.url, 'POST', `/v1/campaigns/${campaign}/calls`, { token: 'enqueue', body: payload, headers });

interface RowResult {
  index: number;
  status: string;
  call_id?: string;
  errors?: { pointer: string; detail: string }[];
}
const results = (answer: Awaited<ReturnType<typeof batch>>) => body(answer).results as RowResult[];

describe('POST /v1/campaigns/{id}/calls', () => {
  it('enqueues the good rows and answers each bad row with its errors, in row order', async () => {
    const answer = await batch('b-mixed', {
      calls: [
        { phone_number: '+14155550101', metadata: { first_name: 'Ada' } },
        { phone_number: 'not a number' },
        { phone_number: '+14155550102', campaign_id: 'elsewhere' },
        { metadata: { first_name: 'Bo' } },
        { phone_number: '+14155550103', expires_at: '2001-01-01T00:00:00Z' },
        { phone_number: '+14155550104', key: 'row-5' },
        'just a string',
      ],
    });
    expect(answer.status).toBe(200);
    expect(body(answer)).toMatchObject({ campaign_id: 'b-mixed', rows: 7, enqueued: 2, duplicates: 0, rejected: 5 });
    const rows = results(answer);
    expect(rows.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(rows.map((r) => r.status)).toEqual(['created', 'rejected', 'rejected', 'rejected', 'rejected', 'created', 'rejected']);
    expect(rows[1]?.errors).toEqual([{ pointer: '/calls/1', detail: expect.stringMatching(/not a valid phone number/) }]);
    expect(rows[2]?.errors).toEqual([{ pointer: '/calls/2/campaign_id', detail: expect.stringMatching(/unknown field/) }]);
    expect(rows[3]?.errors).toEqual([{ pointer: '/calls/3/phone_number', detail: expect.any(String) }]);
    expect(rows[4]?.errors).toEqual([{ pointer: '/calls/4/expires_at', detail: expect.stringMatching(/^expires_at is in the past/) }]);
    expect(rows[6]?.errors).toEqual([{ pointer: '/calls/6', detail: expect.any(String) }]);
    expect((await api.store.counters('b-mixed')).total).toBe(2);
  });

  it('keys rows as import does (by key, else by number): the same rows from a CSV import are duplicates', async () => {
    const campaign = `b-import-${randomUUID().slice(0, 8)}`;
    const answer = await batch(campaign, {
      calls: [{ phone_number: '+14155550201', metadata: { first_name: 'Ada' } }, { phone_number: '+1 (415) 555-0202', key: 'crm-7' }, { phone_number: '+14155550201' }],
    });
    const rows = results(answer);
    expect(rows.map((r) => r.status)).toEqual(['created', 'created', 'duplicate']);
    expect(rows[0]?.call_id).toBe(keyedCallId(campaign, phoneNumberKey('+14155550201')));
    expect(rows[1]?.call_id).toBe(keyedCallId(campaign, 'crm-7'));

    const dir = await mkdtemp(join(tmpdir(), 'api-batch-'));
    const producer = new CallProducer({ connection: api.redis, prefix: api.prefix, maxAttempts: api.maxAttempts });
    try {
      const file = join(dir, 'same.csv');
      await writeFile(file, 'phone_number,key,first_name\n+14155550201,,Ada\n+14155550202,crm-7,\n');
      const summary = await importCsv(file, { campaignId: campaign, producer });
      expect(summary).toMatchObject({ rows: 2, enqueued: 0, duplicates: 2, rejected: [] });
    } finally {
      await producer.close();
      await rm(dir, { recursive: true, force: true });
    }
    const record = await api.store.get(campaign, keyedCallId(campaign, 'crm-7'));
    expect(record).toMatchObject({ state: 'queued', phoneNumber: '+14155550202' });
    expect((await api.queue.getJob(keyedCallId(campaign, 'crm-7')))?.data.campaignId).toBe(campaign);
  });

  it('enqueues nothing twice when a batch is sent again', async () => {
    const campaign = `b-retry-${randomUUID().slice(0, 8)}`;
    const payload = { calls: [{ phone_number: '+14155550301' }, { phone_number: '+14155550302', key: 'k2' }] };
    const first = await batch(campaign, payload);
    const again = await batch(campaign, payload);
    expect(body(first)).toMatchObject({ enqueued: 2, duplicates: 0 });
    expect(body(again)).toMatchObject({ enqueued: 0, duplicates: 2 });
    expect(results(again).map((r) => r.call_id)).toEqual(results(first).map((r) => r.call_id));
  });

  it('applies the batch-wide profile, priority and calling window to every row', async () => {
    const campaign = `b-defaults-${randomUUID().slice(0, 8)}`;
    const answer = await batch(campaign, {
      priority: 10,
      call_window: { from: '09:00', to: '20:00', time_zone: 'America/New_York', days: [1, 2, 3, 4, 5] },
      calls: [{ phone_number: '+14155550401' }],
    });
    const callId = results(answer)[0]?.call_id ?? '';
    const job = await api.queue.getJob(callId);
    expect(job?.opts.priority).toBe(10);
    expect(job?.data.callWindow).toEqual({ from: '09:00', to: '20:00', timeZone: 'America/New_York', days: [1, 2, 3, 4, 5] });
    const unknownProfile = await batch(campaign, { agent_profile: 'nobody-has-this', calls: [{ phone_number: '+14155550402' }] });
    expect(results(unknownProfile)[0]).toMatchObject({ status: 'rejected', errors: [{ detail: expect.stringMatching(/nobody-has-this/) }] });
  });

  it(`takes ${MAX_BATCH_CALLS.toLocaleString('en')} rows and refuses one more with a 400 naming the limit`, async () => {
    const campaign = `b-limit-${randomUUID().slice(0, 8)}`;
    const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ phone_number: `+1415${String(2_000_000 + i)}`, key: `r${i}` }));
    const tooMany = await batch(campaign, { calls: rows(MAX_BATCH_CALLS + 1) });
    const doc = problem(tooMany, 400);
    expect(doc.detail).toMatch(/at most 10000 calls/);
    expect((await api.store.counters(campaign)).total).toBe(0);

    const full = await batch(campaign, { calls: rows(MAX_BATCH_CALLS) });
    expect(full.status).toBe(200);
    expect(body(full)).toMatchObject({ rows: MAX_BATCH_CALLS, enqueued: MAX_BATCH_CALLS, rejected: 0 });
    expect(await api.queue.getJobCountByTypes('wait', 'prioritized', 'delayed')).toBeGreaterThanOrEqual(MAX_BATCH_CALLS);
  });

  it('refuses an empty batch, a batch that is not an object, unknown envelope fields and a bad campaign id', async () => {
    problem(await batch('b-bad', { calls: [] }), 400);
    problem(await batch('b-bad', [{ phone_number: '+14155550501' }]), 400);
    expect((problem(await batch('b-bad', { calls: [{ phone_number: '+14155550501' }], campaign: 'x' }), 400).errors as unknown[]).length).toBe(1);
    problem(await batch('bad%3Acampaign', { calls: [{ phone_number: '+14155550501' }] }), 400);
  });

  it('honours Idempotency-Key: the same batch again is 200 with the same calls, another batch under it is 409', async () => {
    const campaign = `b-idem-${randomUUID().slice(0, 8)}`;
    const key = randomUUID();
    const payload = { calls: [{ phone_number: '+14155550601' }] };
    const first = await batch(campaign, payload, { 'idempotency-key': key });
    const again = await batch(campaign, payload, { 'idempotency-key': key });
    expect(results(again)[0]?.call_id).toBe(results(first)[0]?.call_id);
    problem(await batch(campaign, { calls: [{ phone_number: '+14155550602' }] }, { 'idempotency-key': key }), 409);
  });

  it('lets the call routes find batch calls by id', async () => {
    const answer = await batch('b-find', { calls: [{ phone_number: '+14155550701' }] });
    const callId = results(answer)[0]?.call_id ?? '';
    expect(body(await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' })).campaign_id).toBe('b-find');
  });
});
