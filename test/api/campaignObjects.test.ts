import { describe, expect, it } from 'vitest';
import { uniquePrefix } from '../helpers/testRedis.js';
import { body, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-campaign-objects'), (f) => (api = f));

describe('campaign objects through the API', () => {
  it('creates, lists, shows, changes and archives a campaign', async () => {
    const created = await call(api.url, 'POST', '/v1/campaigns', {
      token: 'admin',
      body: { id: 'api-spring', name: 'Spring', cps: 4, max_active_calls: 10, webhook: { url: 'https://example.com/h', secret: 's3cret' } },
    });
    expect(created.status).toBe(201);
    expect(body(created)).toMatchObject({ id: 'api-spring', status: 'active', cps: 4, webhook: { secret: '***' } });
    expect((await call(api.url, 'POST', '/v1/campaigns', { token: 'admin', body: { id: 'api-spring' } })).status).toBe(409);

    const listed = body(await call(api.url, 'GET', '/v1/campaigns', { token: 'read' }));
    expect((listed.campaigns as { id: string }[]).map((c) => c.id)).toContain('api-spring');
    expect(body(await call(api.url, 'GET', '/v1/campaigns/api-spring', { token: 'read' }))).toMatchObject({ name: 'Spring' });

    const changed = await call(api.url, 'PATCH', '/v1/campaigns/api-spring', { token: 'admin', body: { max_active_calls: 2, unset: ['cps'] } });
    expect(changed.status).toBe(200);
    expect(body(changed)).toMatchObject({ max_active_calls: 2 });
    expect(body(changed).cps).toBeUndefined();

    // a defined campaign without calls can be paused and canceled (it is known), then archived
    expect((await call(api.url, 'POST', '/v1/campaigns/api-spring/pause', { token: 'admin' })).status).toBe(200);
    expect(body(await call(api.url, 'GET', '/v1/campaigns/api-spring', { token: 'read' }))).toMatchObject({ status: 'paused' });
    expect((await call(api.url, 'POST', '/v1/campaigns/api-spring/cancel', { token: 'admin' })).status).toBe(200);
    expect(body(await call(api.url, 'POST', '/v1/campaigns/api-spring/archive', { token: 'admin' }))).toMatchObject({ status: 'archived' });
    problem(await call(api.url, 'PATCH', '/v1/campaigns/api-spring', { token: 'admin', body: { cps: 1 } }), 409);
  });

  it('answers bad settings with a 400 naming each field, and an unknown campaign with a 404', async () => {
    const doc = problem(await call(api.url, 'POST', '/v1/campaigns', { token: 'admin', body: { id: 'api-bad', cps: 0, ends_at: 'soon', colour: 'red' } }), 400);
    const pointers = (doc.errors as { pointer: string }[]).map((e) => e.pointer);
    expect(pointers).toEqual(expect.arrayContaining(['/cps', '/ends_at']));
    expect(String(doc.detail)).toMatch(/colour/);
    problem(await call(api.url, 'GET', '/v1/campaigns/api-none', { token: 'read' }), 404);
    problem(await call(api.url, 'PATCH', '/v1/campaigns/api-none', { token: 'admin', body: { cps: 1 } }), 404);
  });

  it('needs the admin scope to create or change, read to look', async () => {
    problem(await call(api.url, 'POST', '/v1/campaigns', { token: 'read', body: { id: 'api-scope' } }), 403);
    problem(await call(api.url, 'GET', '/v1/campaigns', { token: 'enqueue' }), 403);
  });
});
