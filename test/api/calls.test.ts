import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CALL_BODY_MAX_BYTES } from '../../src/api/routes/calls.js';
import { startApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { keyedCallId } from '../../src/producer/callIds.js';
import { testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { API_TOKENS, body, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-calls'), (f) => (api = f));

let numberSeq = 0;
/** A fresh valid US number per call of this file. */
const nextNumber = () => `+1415556${String(1000 + numberSeq++).padStart(4, '0')}`;

const post = (payload: unknown, headers: Record<string, string> = {}) => call(api.url, 'POST', '/v1/calls', { token: 'enqueue', body: payload, headers });

describe('POST /v1/calls', () => {
  it('enqueues a call through the producer: 201 with its id, a record in state queued and a job on `calls`', async () => {
    const number = nextNumber();
    const answer = await post({ phone_number: number, campaign_id: 'api-one', metadata: { first_name: 'Ada', visits: 3 } });
    expect(answer.status).toBe(201);
    const { call_id: callId, campaign_id: campaignId } = body(answer);
    expect(campaignId).toBe('api-one');
    expect(answer.headers.get('location')).toBe(`/v1/calls/${String(callId)}`);
    const record = await api.store.get('api-one', String(callId));
    expect(record).toMatchObject({ state: 'queued', phoneNumber: number, metadata: { first_name: 'Ada', visits: 3 } });
    const job = await api.queue.getJob(String(callId));
    expect(job?.data).toMatchObject({ callId, campaignId: 'api-one', phoneNumber: number });
    expect(job?.opts.attempts).toBe(api.maxAttempts);
  });

  it('puts a call without campaign_id in the default campaign and one with `at` in the future behind a delay', async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const answer = await post({ phone_number: nextNumber(), at });
    expect(body(answer).campaign_id).toBe('default');
    const job = await api.queue.getJob(String(body(answer).call_id));
    expect(await job?.isDelayed()).toBe(true);
  });

  it('answers a repeated identical request with a key with 200 and the same call id, enqueueing once', async () => {
    const payload = { phone_number: nextNumber(), campaign_id: 'api-keys', key: `order-${randomUUID()}`, metadata: { order: 'A-1' } };
    const first = await post(payload);
    const second = await post({ ...payload, metadata: { order: 'A-1' } });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(body(second).call_id).toBe(body(first).call_id);
    expect(body(first).call_id).toBe(keyedCallId('api-keys', payload.key));
    expect((await api.store.counters('api-keys')).total).toBe(1);
  });

  it('refuses the same key with another number with a 409 naming the call the key already has, to a token that may read calls', async () => {
    const key = `order-${randomUUID()}`;
    const stored = nextNumber();
    const first = await post({ phone_number: stored, campaign_id: 'api-keys', key });
    const other = await call(api.url, 'POST', '/v1/calls', { token: 'enqueueRead', body: { phone_number: nextNumber(), campaign_id: 'api-keys', key } });
    const doc = problem(other, 409);
    expect(doc.type).toBe('urn:dialer:problem:key-conflict');
    expect(doc.call_id).toBe(body(first).call_id);
    expect(doc.detail).toContain(`with number ${stored}`);
  });

  it('tells an enqueue-only token which field differs under a used key, never the stored call id, number or metadata', async () => {
    const key = `appt-${randomUUID()}`;
    const stored = nextNumber();
    const first = await post({ phone_number: stored, campaign_id: 'api-keys', key, metadata: { a: 'secret' } });
    const byNumber = problem(await post({ phone_number: nextNumber(), campaign_id: 'api-keys', key, metadata: { a: 'secret' } }), 409);
    expect(byNumber.type).toBe('urn:dialer:problem:key-conflict');
    expect(byNumber.detail).toBe(`key "${key}" already names another call in campaign api-keys, with a different number: use a new key for a different call`);
    expect(byNumber).not.toHaveProperty('call_id');
    const byMetadata = problem(await post({ phone_number: stored, campaign_id: 'api-keys', key, metadata: { a: 1 } }), 409);
    expect(byMetadata.detail).toBe(`key "${key}" already names another call in campaign api-keys, with a different metadata: use a new key for a different call`);
    for (const doc of [byNumber, byMetadata]) {
      const text = JSON.stringify(doc);
      expect(text).not.toContain(stored);
      expect(text).not.toContain('secret');
      expect(text).not.toContain(String(body(first).call_id));
    }
    // a batch row under the same key: the same rule per row
    const batch = await call(api.url, 'POST', '/v1/campaigns/api-keys/calls', { token: 'enqueue', body: { calls: [{ phone_number: nextNumber(), key }] } });
    expect(batch.status).toBe(200);
    const text = JSON.stringify(body(batch));
    expect(text).toContain('with a different number');
    expect(text).not.toContain(stored);
  });

  it('refuses a key an `enqueue --key` already used for another number (the producer keeps keys, not the API)', async () => {
    const key = `cli-${randomUUID()}`;
    const producer = new CallProducer({ connection: api.redis, prefix: api.prefix, maxAttempts: api.maxAttempts });
    try {
      await producer.enqueueCall({ phoneNumber: nextNumber(), campaignId: 'api-keys', key });
    } finally {
      await producer.close();
    }
    problem(await post({ phone_number: nextNumber(), campaign_id: 'api-keys', key }), 409);
  });
});

describe('Idempotency-Key', () => {
  it('answers a retry (same key, same body in another key order) with 200 and the same call', async () => {
    const key = randomUUID();
    const number = nextNumber();
    const first = await post({ phone_number: number, campaign_id: 'api-idem', metadata: { a: 1, b: 'x' } }, { 'idempotency-key': key });
    const retry = await post({ metadata: { b: 'x', a: 1 }, campaign_id: 'api-idem', phone_number: number }, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    expect(retry.status).toBe(200);
    expect(body(retry).call_id).toBe(body(first).call_id);
    expect((await api.store.counters('api-idem')).total).toBe(1);
  });

  it('treats the quoted structured-field form of the header as the same key', async () => {
    const key = randomUUID();
    const payload = { phone_number: nextNumber(), campaign_id: 'api-idem' };
    const first = await post(payload, { 'idempotency-key': key });
    const retry = await post(payload, { 'idempotency-key': `"${key}"` });
    expect(body(retry).call_id).toBe(body(first).call_id);
  });

  it('refuses the same key with another body (409) and enqueues nothing for it', async () => {
    const key = randomUUID();
    await post({ phone_number: nextNumber(), campaign_id: 'api-idem2' }, { 'idempotency-key': key });
    const before = (await api.store.counters('api-idem2')).total;
    const other = await post({ phone_number: nextNumber(), campaign_id: 'api-idem2' }, { 'idempotency-key': key });
    expect(problem(other, 409).type).toBe('urn:dialer:problem:idempotency-key-reused');
    const otherTime = await post({ phone_number: nextNumber(), campaign_id: 'api-idem2', at: new Date(Date.now() + 60_000).toISOString() }, { 'idempotency-key': key });
    problem(otherTime, 409);
    expect((await api.store.counters('api-idem2')).total).toBe(before);
  });

  it('refuses the same key for another campaign', async () => {
    const key = randomUUID();
    const number = nextNumber();
    await post({ phone_number: number, campaign_id: 'api-idem3' }, { 'idempotency-key': key });
    problem(await post({ phone_number: number, campaign_id: 'api-idem4' }, { 'idempotency-key': key }), 409);
  });

  it('gives two concurrent identical requests one call: one 201, one 200', async () => {
    const key = randomUUID();
    const payload = { phone_number: nextNumber(), campaign_id: 'api-idem5' };
    const answers = await Promise.all([post(payload, { 'idempotency-key': key }), post(payload, { 'idempotency-key': key })]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 201]);
    expect(new Set(answers.map((a) => body(a).call_id)).size).toBe(1);
  });

  it('lets a key go when its request was refused for its content, so the fixed request may use it', async () => {
    const key = randomUUID();
    problem(await post({ phone_number: '+1415', campaign_id: 'api-idem6' }, { 'idempotency-key': key }), 422);
    const fixed = await post({ phone_number: nextNumber(), campaign_id: 'api-idem6' }, { 'idempotency-key': key });
    expect(fixed.status).toBe(201);
  });

  it('refuses an empty key, bare or quoted, with a 400 saying it is empty, and enqueues nothing', async () => {
    const before = (await api.store.counters('api-idem-empty')).total;
    for (const empty of ['', '""']) {
      const doc = problem(await post({ phone_number: nextNumber(), campaign_id: 'api-idem-empty' }, { 'idempotency-key': empty }), 400);
      expect(doc.detail, JSON.stringify(empty)).toMatch(/^Idempotency-Key is empty/);
      expect(doc.errors).toEqual([{ pointer: '#header/Idempotency-Key', detail: expect.stringMatching(/empty/) }]);
      const batch = await call(api.url, 'POST', '/v1/campaigns/api-idem-empty/calls', {
        token: 'enqueue',
        body: { calls: [{ phone_number: nextNumber() }] },
        headers: { 'idempotency-key': empty },
      });
      expect(problem(batch, 400).detail).toMatch(/^Idempotency-Key is empty/);
    }
    expect((await api.store.counters('api-idem-empty')).total).toBe(before);
  });

  it('refuses a malformed header with a 400 pointing at it', async () => {
    const doc = problem(await post({ phone_number: nextNumber() }, { 'idempotency-key': 'x'.repeat(600) }), 400);
    expect(doc.errors).toEqual([expect.objectContaining({ pointer: '#header/Idempotency-Key' })]);
  });
});

describe('bad input is a 4xx problem, never a 500', () => {
  it('names every bad and unknown field with a JSON pointer', async () => {
    const doc = problem(await post({ phone_number: 4155550123, campaign_id: 'bad:id', colour: 'red', metadata: { nested: { a: 1 } } }), 400);
    expect(doc.type).toBe('urn:dialer:problem:invalid-request');
    const pointers = (doc.errors as { pointer: string }[]).map((e) => e.pointer).sort();
    expect(pointers).toEqual(['/campaign_id', '/colour', '/metadata/nested', '/phone_number']);
  });

  it('reads a number without a country code in DIAL_DEFAULT_REGION, as enqueue does', async () => {
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: api.prefix, DIAL_DEFAULT_REGION: 'US' });
    const server = await startApiServer({ config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: API_TOKENS, rateLimitPerSecond: 1000 });
    try {
      const created = await call(server.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone_number: '(415) 555-7788', campaign_id: 'api-region' } });
      expect(created.status).toBe(201);
      expect(await api.store.get('api-region', String(body(created).call_id))).toMatchObject({ phoneNumber: '+14155557788' });
    } finally {
      await server.close();
    }
    // without a default region such a number is refused, as it is by enqueue
    problem(await post({ phone_number: '(415) 555-7788', campaign_id: 'api-region' }), 422);
  });

  it('says how an API caller gives numbers a region (JSON fields and settings), never a CLI flag or a CSV column', async () => {
    const national = '(415) 555-7789';
    const one = problem(await post({ phone_number: national, campaign_id: 'api-region-hint' }), 422);
    const batch = body(await call(api.url, 'POST', '/v1/campaigns/api-region-hint/calls', { token: 'enqueue', body: { calls: [{ phone_number: national }] } }));
    const [row] = batch.results as { errors: { pointer: string; detail: string }[] }[];
    const schedule = problem(
      await call(api.url, 'POST', '/v1/schedules', { token: 'admin', body: { id: 'api-region-hint', cron: '0 9 * * mon', campaign_id: 'api-region-hint', calls: [{ phone_number: national }] } }),
      400,
    );
    for (const detail of [String(one.detail), row?.errors[0]?.detail ?? '', String(schedule.detail)]) {
      expect(detail).toMatch(/no country code: add \+<country code> \(e\.g\. \+1 415 555 0123\), or set a default region: the campaign's default_region or DIAL_DEFAULT_REGION on the server/);
      expect(detail).not.toMatch(/--|column/);
    }
  });

  it('refuses a schedule firing more than once a minute with a 400 saying why (the check the CLI uses)', async () => {
    const doc = problem(
      await call(api.url, 'POST', '/v1/schedules', { token: 'admin', body: { id: 'api-every-second', cron: '* * * * * *', calls: [{ phone_number: '+14155550190' }] } }),
      400,
    );
    expect(doc.detail).toContain('cron: "* * * * * *" fires more than once a minute');
  });

  it('refuses a number that cannot be dialed with 422 and the producer’s reason', async () => {
    const doc = problem(await post({ phone_number: '+1 415 CALL ME' }), 422);
    expect(doc.type).toBe('urn:dialer:problem:invalid-call');
    expect(doc.detail).toMatch(/not a valid phone number/);
  });

  it('refuses an expiry in the past or before the start with 422', async () => {
    problem(await post({ phone_number: nextNumber(), expires_at: '2001-01-01T00:00:00Z' }), 422);
    const at = new Date(Date.now() + 7_200_000).toISOString();
    const expires = new Date(Date.now() + 3_600_000).toISOString();
    const doc = problem(await post({ phone_number: nextNumber(), at, expires_at: expires }), 422);
    expect(doc.errors).toEqual([expect.objectContaining({ pointer: '/expires_at' })]);
  });

  it('holds `at` to the bounds the CLI and import use: not over 5 minutes past, not over 90 days ahead', async () => {
    const day = 24 * 3_600_000;
    const past = problem(await post({ phone_number: nextNumber(), at: new Date(Date.now() - 3_600_000).toISOString() }), 422);
    expect(past.errors).toEqual([{ pointer: '/at', detail: expect.stringMatching(/^at: .* is in the past/) }]);
    const far = problem(await post({ phone_number: nextNumber(), at: new Date(Date.now() + 91 * day).toISOString() }), 422);
    expect(far.errors).toEqual([{ pointer: '/at', detail: expect.stringMatching(/more than 90 days ahead/) }]);
    problem(await post({ phone_number: nextNumber(), expires_at: '9999-12-31T23:59:59Z' }), 422);
    // a minute ago is a reminder list prepared a little early: it means now
    expect((await post({ phone_number: nextNumber(), at: new Date(Date.now() - 60_000).toISOString() })).status).toBe(201);
  });

  it('refuses an unknown agent profile with 422 naming it', async () => {
    const doc = problem(await post({ phone_number: nextNumber(), agent_profile: 'no-such-profile' }), 422);
    expect(doc.detail).toMatch(/no-such-profile/);
  });

  it('answers malformed bodies, media types and sizes with the matching problem', async () => {
    const auth = { token: 'enqueue' as const };
    problem(await call(api.url, 'POST', '/v1/calls', { ...auth, rawBody: '{"phone_number": ' }), 400);
    problem(await call(api.url, 'POST', '/v1/calls', { ...auth, rawBody: '' }), 400);
    problem(await call(api.url, 'POST', '/v1/calls', { ...auth, rawBody: '[]' }), 400);
    problem(await call(api.url, 'POST', '/v1/calls', { ...auth, rawBody: 'null' }), 400);
    problem(await call(api.url, 'POST', '/v1/calls', { ...auth, rawBody: '"+14155550123"' }), 400);
    problem(await call(api.url, 'POST', '/v1/calls', { ...auth, rawBody: 'phone_number=+14155550123', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415);
    problem(await call(api.url, 'POST', '/v1/calls', { ...auth, rawBody: '+14155550123', headers: { 'content-type': 'text/plain' } }), 415);
    const huge = { phone_number: nextNumber(), metadata: { blob: 'x'.repeat(CALL_BODY_MAX_BYTES) } };
    expect(problem(await post(huge), 413).type).toBe('urn:dialer:problem:body-too-large');
    // metadata over 16 KiB but within the body limit: the producer's own check, as for enqueue and import
    problem(await post({ phone_number: nextNumber(), metadata: { blob: 'x'.repeat(20_000) } }), 400);
  });

  it('refuses a body holding __proto__ (or constructor.prototype) anywhere with a 422 naming the key, and pollutes nothing', async () => {
    const auth = { token: 'enqueue' as const };
    const cases: [string, string, string][] = [
      ['/v1/calls', '{"__proto__": {"polluted": true}, "phone_number": "+14155550123"}', '/__proto__'],
      ['/v1/calls', '{"phone_number": "+14155550123", "metadata": {"__proto__": {"polluted": true}}}', '/metadata/__proto__'],
      // JSON escapes spell the same key
      ['/v1/calls', '{"phone_number": "+14155550123", "metadata": {"\\u005f_proto__": {"polluted": true}}}', '/metadata/__proto__'],
      ['/v1/calls', '{"phone_number": "+14155550123", "constructor": {"prototype": {"polluted": true}}}', '/constructor/prototype'],
      ['/v1/campaigns/api-proto/calls', '{"calls": [{"phone_number": "+14155550123"}, {"phone_number": "+14155550124", "__proto__": {"polluted": true}}]}', '/calls/1/__proto__'],
    ];
    for (const [path, raw, pointer] of cases) {
      const doc = problem(await call(api.url, 'POST', path, { ...auth, rawBody: raw }), 422);
      expect(doc.type, raw).toBe('urn:dialer:problem:reserved-key');
      expect(doc.detail).toMatch(new RegExp(`^the body holds the key "(__proto__|prototype)" at ${pointer.replace(/[/]/g, '\\/')}: `));
      expect(doc.errors).toEqual([{ pointer, detail: expect.stringContaining('never accepted') }]);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect((await api.store.counters('api-proto')).total).toBe(0);
    // a metadata field named constructor (a string) is only data
    expect((await post({ phone_number: nextNumber(), metadata: { constructor: 'Bob' } })).status).toBe(201);
  });

  it('answers odd shapes and values with 4xx problems', async () => {
    const bodies: unknown[] = [
      {},
      { phone_number: '' },
      { phone_number: null },
      { phone_number: ['+14155550123'] },
      { phone_number: '+14155550123', metadata: [] },
      { phone_number: '+14155550123', metadata: 'first_name=Ada' },
      { phone_number: '+14155550123', at: 'tomorrow' },
      { phone_number: '+14155550123', at: 1_900_000_000_000 },
      { phone_number: '+14155550123', priority: -1 },
      { phone_number: '+14155550123', priority: 1.5 },
      { phone_number: '+14155550123', key: '' },
      { phone_number: '+14155550123', campaign_id: 'x'.repeat(200) },
      { phone_number: '+14155550123', call_window: { from: '25:00', to: '08:00', time_zone: 'UTC' } },
      { phone_number: '+14155550123', call_window: { from: '09:00', to: '17:00', time_zone: 'Mars/Olympus' } },
      { phone_number: '+14155550123', call_window: { from: '09:00', to: '17:00', time_zone: 'UTC', days: [0] } },
      { phone_number: '\u0000\u0001', campaign_id: '../../etc' },
      { phone_number: '+99999999999999999999999' },
    ];
    for (const payload of bodies) {
      const answer = await post(payload);
      expect(answer.status, JSON.stringify(payload)).toBeGreaterThanOrEqual(400);
      expect(answer.status, JSON.stringify(payload)).toBeLessThan(500);
      expect(answer.contentType).toMatch(/^application\/problem\+json/);
    }
  });

  it('answers URLs the router cannot read, over-long ids and compressed bodies with problems too', async () => {
    const badUrl = problem(await call(api.url, 'GET', '/v1/calls/%E0%A4%A', { token: 'read' }), 400);
    expect(badUrl.type).toBe('urn:dialer:problem:invalid-request');
    const longId = problem(await call(api.url, 'GET', `/v1/campaigns/${'a'.repeat(130)}/report`, { token: 'read' }), 400);
    expect(longId.errors).toEqual([expect.objectContaining({ pointer: '#path/id' })]);
    problem(await call(api.url, 'GET', `/v1/calls/${'a'.repeat(5000)}`, { token: 'read' }), 400);
    const gzip = await call(api.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone_number: nextNumber() }, headers: { 'content-encoding': 'gzip' } });
    expect(problem(gzip, 415).detail).toMatch(/Content-Encoding gzip/);
  });

  it('refuses unknown query parameters on every route, naming each, before doing anything', async () => {
    const before = (await api.store.counters('api-query')).total;
    const created = problem(await call(api.url, 'POST', '/v1/calls?campaign=api-query&dry_run=1', { token: 'enqueue', body: { phone_number: nextNumber(), campaign_id: 'api-query' } }), 400);
    expect(created.detail).toBe('unknown query parameters: campaign, dry_run (this route takes none)');
    expect(created.errors).toEqual([
      { pointer: '#query/campaign', detail: 'unknown query parameter' },
      { pointer: '#query/dry_run', detail: 'unknown query parameter' },
    ]);
    expect((await api.store.counters('api-query')).total).toBe(before);
    const taking = problem(await call(api.url, 'GET', '/v1/calls/c-1?transcript=true&bogus=1', { token: 'read' }), 400);
    expect(taking.detail).toBe('unknown query parameter: bogus (this route takes transcript, campaign_id)');
    const routes: [string, string][] = [
      ['GET', '/v1/schedules?x=1'],
      ['GET', '/v1/campaigns?archive=true'],
      ['GET', '/v1/campaigns/api-query/report?fmt=csv'],
      ['POST', '/v1/campaigns/api-query/pause?now=1'],
      ['DELETE', '/v1/calls/c-1?force=1'],
      ['GET', '/healthz?x=1'],
      ['GET', '/openapi.json?v=2'],
    ];
    for (const [method, url] of routes) {
      const doc = problem(await call(api.url, method, url, { token: 'all' }), 400);
      expect(doc.detail, `${method} ${url}`).toMatch(/^unknown query parameter: \w+ \(this route takes/);
    }
  });

  it('answers unknown routes with 404 and known routes with another method with 405 and Allow', async () => {
    problem(await call(api.url, 'GET', '/v2/calls', { token: 'all' }), 404);
    const wrong = await call(api.url, 'PUT', '/v1/calls/c-1', { token: 'all', body: {} });
    problem(wrong, 405);
    expect(wrong.headers.get('allow')).toBe('GET, HEAD, DELETE');
  });
});

describe('GET /v1/calls/{id}', () => {
  it('shows a queued call with no attempts yet', async () => {
    const created = await post({ phone_number: nextNumber(), campaign_id: 'api-get', metadata: { first_name: 'Lin' } });
    const callId = String(body(created).call_id);
    const answer = await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' });
    expect(answer.status).toBe(200);
    expect(body(answer)).toMatchObject({ call_id: callId, campaign_id: 'api-get', state: 'queued', outcome: 'pending', attempts: 0, attempt_log: [], metadata: { first_name: 'Lin' } });
    expect(body(answer).ended_at).toBeUndefined();
  });

  it('shows the outcome, survey answers, the key it was enqueued with and, only when asked, the transcript', async () => {
    const callId = String(body(await post({ phone_number: nextNumber(), campaign_id: 'api-get', key: 'crm-7' })).call_id);
    await api.store.applyTerminal({
      callId,
      campaignId: 'api-get',
      outcome: 'answered',
      reportedBy: 'agent',
      attempt: 1,
      endedAt: Date.now(),
      durationMs: 42_000,
      summary: 'callee confirmed the appointment',
      surveyAnswers: [{ question: 'Will you come?', answer: 'yes' }],
      transcript: [
        { role: 'agent', text: 'Hello, this is the clinic.' },
        { role: 'callee', text: 'Yes, I will come.' },
      ],
    });
    const plain = body(await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' }));
    expect(plain).toMatchObject({ state: 'terminal', outcome: 'answered', duration_s: 42, summary: 'callee confirmed the appointment', key: 'crm-7' });
    expect(typeof plain.ended_at).toBe('string');
    expect(plain.survey_answers).toEqual([{ question: 'Will you come?', answer: 'yes' }]);
    expect(plain.transcript).toBeUndefined();
    const full = body(await call(api.url, 'GET', `/v1/calls/${callId}?transcript=true`, { token: 'read' }));
    expect(full.transcript).toEqual([
      { role: 'agent', text: 'Hello, this is the clinic.' },
      { role: 'callee', text: 'Yes, I will come.' },
    ]);
  });

  it('shows when a waiting call comes up and when it expires, like `dialer call`', async () => {
    const at = new Date(Date.now() + 60 * 60 * 1000);
    const expires = new Date(at.getTime() + 2 * 60 * 60 * 1000);
    const created = await post({ phone_number: nextNumber(), campaign_id: 'api-get', at: at.toISOString(), expires_at: expires.toISOString() });
    const shown = body(await call(api.url, 'GET', `/v1/calls/${String(body(created).call_id)}`, { token: 'read' }));
    expect(shown.expires_at).toBe(expires.toISOString());
    // BullMQ keeps a delay, counted from the API's own now: within a second of the time asked for
    expect(Math.abs(Date.parse(String(shown.due_at)) - at.getTime())).toBeLessThan(1000);
    // the campaign report gives every call the same fields, as `report --json` does (README: its dueAt and expiresAt)
    const report = body(await call(api.url, 'GET', '/v1/campaigns/api-get/report', { token: 'read' }));
    const line = (report.calls as Record<string, unknown>[]).find((c) => c.call_id === shown.call_id);
    expect(line).toMatchObject({ due_at: shown.due_at, expires_at: expires.toISOString() });
  });

  it('says of an attempt canceled while it waited for its dial slot that its dial never went out', async () => {
    const callId = String(body(await post({ phone_number: nextNumber(), campaign_id: 'api-get' })).call_id);
    await api.store.beginAttempt({ callId, campaignId: 'api-get', phoneNumber: '+14155550171', metadata: {} }, 1, `room-${callId}-1`);
    expect((await call(api.url, 'DELETE', `/v1/calls/${callId}`, { token: 'all' })).status).toBeLessThan(300);
    const shown = body(await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' }));
    expect(shown).toMatchObject({ outcome: 'canceled', attempts: 0, attempt_log: [{ attempt: 1, dial_sent: false }] });
    expect(shown.due_at).toBeUndefined();
  });

  it('finds calls the API did not enqueue (CLI, import) by their id alone', async () => {
    const producer = new CallProducer({ connection: api.redis, prefix: api.prefix, maxAttempts: api.maxAttempts });
    let callId: string;
    try {
      ({ callId } = await producer.enqueueCall({ phoneNumber: nextNumber(), campaignId: 'api-cli' }));
    } finally {
      await producer.close();
    }
    expect(body(await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' })).campaign_id).toBe('api-cli');
    // and once its job is gone (completed jobs are removed after a day), by asking the campaigns
    await api.queue.remove(callId);
    expect(body(await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' })).campaign_id).toBe('api-cli');
  });

  it('finds the calls it enqueued by its own index, with neither their job nor the campaign list to go by', async () => {
    const callId = String(body(await post({ phone_number: nextNumber(), campaign_id: 'api-indexed' })).call_id);
    await api.queue.remove(callId);
    await api.redis.srem(api.store.keys.campaignIndex(), 'api-indexed');
    try {
      expect(body(await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' })).campaign_id).toBe('api-indexed');
    } finally {
      await api.redis.sadd(api.store.keys.campaignIndex(), 'api-indexed');
    }
  });

  it('answers 404 for an unknown call, and 400 for an id that cannot be one', async () => {
    expect(problem(await call(api.url, 'GET', '/v1/calls/c-does-not-exist', { token: 'read' }), 404).detail).toMatch(/no call c-does-not-exist/);
    const doc = problem(await call(api.url, 'GET', '/v1/calls/bad%3Aid', { token: 'read' }), 400);
    expect(doc.errors).toEqual([expect.objectContaining({ pointer: '#path/id' })]);
    problem(await call(api.url, 'GET', '/v1/calls/c-1?transcript=yes', { token: 'read' }), 400);
    problem(await call(api.url, 'GET', '/v1/calls/c-1?verbose=true', { token: 'read' }), 400);
  });
});

describe('DELETE /v1/calls/{id}', () => {
  it('cancels a queued call: outcome canceled, job removed; a second DELETE answers the same', async () => {
    const callId = String(body(await post({ phone_number: nextNumber(), campaign_id: 'api-cancel' })).call_id);
    const answer = await call(api.url, 'DELETE', `/v1/calls/${callId}`, { token: 'admin' });
    expect(answer.status).toBe(200);
    expect(body(answer)).toEqual({ call_id: callId, campaign_id: 'api-cancel', state: 'terminal', outcome: 'canceled' });
    expect(await api.store.get('api-cancel', callId)).toMatchObject({ state: 'terminal', outcome: 'canceled' });
    expect(await api.queue.getJob(callId)).toBeUndefined();
    expect((await call(api.url, 'DELETE', `/v1/calls/${callId}`, { token: 'admin' })).status).toBe(200);
  });

  it('does not end a call that is ringing (409 with its state) but notes the cancel: it will not be tried again', async () => {
    const number = nextNumber();
    const callId = String(body(await post({ phone_number: number, campaign_id: 'api-cancel' })).call_id);
    await api.store.beginAttempt({ callId, campaignId: 'api-cancel', phoneNumber: number, metadata: {} }, 1, `room-${callId}`, { dialSent: true });
    const doc = problem(await call(api.url, 'DELETE', `/v1/calls/${callId}`, { token: 'admin' }), 409);
    expect(doc).toMatchObject({ type: 'urn:dialer:problem:call-not-cancelable', state: 'dialing', cancel_requested: true });
    expect(doc.detail).toMatch(/will not be tried again, and ends canceled if this attempt ends unanswered/);
    expect(await api.store.get('api-cancel', callId)).toMatchObject({ state: 'dialing' });
    expect(await api.store.isCancelRequested('api-cancel', callId)).toBe(true);
  });

  it('refuses to cancel a call that ended otherwise, and answers 404 for an unknown one', async () => {
    const callId = String(body(await post({ phone_number: nextNumber(), campaign_id: 'api-cancel' })).call_id);
    await api.store.applyTerminal({ callId, campaignId: 'api-cancel', outcome: 'busy', reportedBy: 'consumer', endedAt: Date.now() });
    expect(problem(await call(api.url, 'DELETE', `/v1/calls/${callId}`, { token: 'admin' }), 409).state).toBe('busy');
    problem(await call(api.url, 'DELETE', '/v1/calls/c-nobody', { token: 'admin' }), 404);
  });
});

describe('POST /v1/campaigns/{id}/calls/move (by key, as `dialer move --key`)', () => {
  const HOUR_MS = 3_600_000;
  /** BullMQ's delayed set scores a job by its due time × 0x1000 (getDelayedScore.lua). */
  const dueAt = async (callId: string) => {
    const score = await api.redis.zscore(`${api.prefix}:calls:delayed`, callId);
    return score === null ? undefined : Math.floor(Number(score) / 0x1000);
  };
  const moveByKey = (campaignId: string, payload: unknown) => call(api.url, 'POST', `/v1/campaigns/${campaignId}/calls/move`, { token: 'admin', body: payload });

  it('moves the call the campaign holds under a key to the new time, whichever edge enqueued it', async () => {
    const at = new Date(Date.now() + HOUR_MS).toISOString();
    const viaApi = String(body(await post({ phone_number: nextNumber(), campaign_id: 'api-move', key: 'appt-1', at })).call_id);
    const later = new Date(Date.now() + 3 * HOUR_MS).toISOString();
    const moved = await moveByKey('api-move', { key: 'appt-1', at: later });
    expect(moved.status, moved.text).toBe(200);
    expect(body(moved)).toEqual({ call_id: viaApi, campaign_id: 'api-move', at: later });
    expect(Math.abs(((await dueAt(viaApi)) ?? 0) - Date.parse(later))).toBeLessThan(5_000);

    // a call keyed on the command line or in a CSV (the producer's key) is found the same way
    const producer = new CallProducer({ connection: api.redis, prefix: api.prefix, maxAttempts: api.maxAttempts });
    try {
      const { callId: viaCli } = await producer.enqueueCall({ phoneNumber: nextNumber(), campaignId: 'api-move', key: 'csv-row-7', notBefore: Date.now() + HOUR_MS });
      expect(body(await moveByKey('api-move', { key: 'csv-row-7', at: later })).call_id).toBe(viaCli);
    } finally {
      await producer.close();
    }
  });

  it('answers 404 for a key the campaign does not hold, 422 naming `at` for a time out of bounds, 400 for bad bodies', async () => {
    const missing = problem(await moveByKey('api-move', { key: 'nobody', at: new Date(Date.now() + HOUR_MS).toISOString() }), 404);
    expect(missing.detail).toBe('no call with key "nobody" in campaign api-move');
    await post({ phone_number: nextNumber(), campaign_id: 'api-move', key: 'appt-2', at: new Date(Date.now() + HOUR_MS).toISOString() });
    const far = problem(await moveByKey('api-move', { key: 'appt-2', at: new Date(Date.now() + 100 * 24 * HOUR_MS).toISOString() }), 422);
    expect(far.errors).toEqual([{ pointer: '/at', detail: expect.stringMatching(/^at: .*more than 90 days ahead/) }]);
    expect(far.detail).not.toContain('--');
    problem(await moveByKey('api-move', { key: 'appt-2' }), 400);
    problem(await moveByKey('api-move', { key: 'appt-2', at: new Date().toISOString(), call_id: 'c-1' }), 400);
    problem(await call(api.url, 'POST', '/v1/campaigns/api-move/calls/move', { token: 'enqueue', body: { key: 'appt-2', at: new Date().toISOString() } }), 403);
  });

  it('names `at` in the 422 of a move by id too (never the CLI flag)', async () => {
    const callId = String(body(await post({ phone_number: nextNumber(), campaign_id: 'api-move', at: new Date(Date.now() + HOUR_MS).toISOString() })).call_id);
    const far = problem(await call(api.url, 'POST', `/v1/calls/${callId}/move`, { token: 'admin', body: { at: new Date(Date.now() + 100 * 24 * HOUR_MS).toISOString() } }), 422);
    expect(far.errors).toEqual([{ pointer: '/at', detail: expect.stringMatching(/^at: /) }]);
    // a move's refusal is titled as a move, not as an enqueue
    expect(far.type).toBe('urn:dialer:problem:invalid-move');
    expect(far.title).toBe('The call cannot be moved to that time');
  });
});
