import { describe, expect, it } from 'vitest';
import { uniquePrefix } from '../helpers/testRedis.js';
import { body, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-schedules'), (f) => (api = f));

describe('schedules through the API', () => {
  it('creates, lists and removes a schedule', async () => {
    const created = await call(api.url, 'POST', '/v1/schedules', {
      token: 'admin',
      body: { id: 'api-weekly', cron: '30 9 * * tue', time_zone: 'America/New_York', campaign_id: 'clinic', calls: [{ phone_number: '+14155550121' }] },
    });
    expect(created.status).toBe(200);
    expect(body(created)).toMatchObject({ id: 'api-weekly', time_zone: 'America/New_York' });
    expect(typeof body(created).next_at).toBe('number');
    const listed = body(await call(api.url, 'GET', '/v1/schedules', { token: 'read' }));
    expect((listed.schedules as { id: string }[]).map((s) => s.id)).toContain('api-weekly');
    expect(body(await call(api.url, 'DELETE', '/v1/schedules/api-weekly', { token: 'admin' }))).toEqual({ schedule_id: 'api-weekly', removed: true });
    problem(await call(api.url, 'DELETE', '/v1/schedules/api-weekly', { token: 'admin' }), 404);
  });

  it('takes a bodiless request sent with Content-Type: application/json (as many clients send it), and still asks a route that needs a body for one', async () => {
    const json = { 'content-type': 'application/json' };
    await call(api.url, 'POST', '/v1/schedules', {
      token: 'admin',
      body: { id: 'api-json-header', cron: '0 9 * * *', calls: [{ phone_number: '+14155550122' }] },
    });
    const removed = await call(api.url, 'DELETE', '/v1/schedules/api-json-header', { token: 'admin', headers: json, rawBody: '' });
    expect(removed.status, JSON.stringify(removed.json)).toBe(200);
    expect(body(removed)).toEqual({ schedule_id: 'api-json-header', removed: true });
    const empty = problem(await call(api.url, 'POST', '/v1/schedules', { token: 'admin', headers: json, rawBody: '' }), 400);
    expect(empty.detail).toBe('the body is empty: send a JSON object');
  });

  it('answers a bad pattern or field with a 400', async () => {
    const doc = problem(await call(api.url, 'POST', '/v1/schedules', { token: 'admin', body: { id: 'api-bad', cron: 'soon', calls: [{ phone_number: '+14155550121' }] } }), 400);
    expect(String(doc.detail)).toMatch(/cron/);
    problem(await call(api.url, 'POST', '/v1/schedules', { token: 'admin', body: { id: 'api-bad', cron: '0 9 * * *', calls: [] } }), 400);
    problem(await call(api.url, 'POST', '/v1/schedules', { token: 'read', body: { id: 'api-bad', cron: '0 9 * * *', calls: [{ phone_number: '+1' }] } }), 403);
  });
});
