/**
 * The queue dashboard (bull-board at /admin/queues) behind an admin token: a browser's Basic credentials (the token
 * as password) or a bearer header get in; no token, a wrong one, or one without `admin` do not. Its own API answers
 * with the dialer's queues, read-only.
 */
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { TOKENS, useApiFixture, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-dashboard'), (f) => (api = f));

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const get = (path: string, authorization?: string) => fetch(`${api.url}${path}`, { headers: authorization ? { authorization } : {} });

describe('queue dashboard', () => {
  it('asks a browser for an admin token (401 with a Basic challenge) and refuses a wrong one', async () => {
    for (const authorization of [undefined, basic('admin', 'not-a-token'), `Bearer not-a-token`, basic('admin', '')]) {
      const response = await get('/admin/queues', authorization);
      expect(response.status, authorization).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="dialer queue dashboard/);
      expect(((await response.json()) as { type: string }).type).toBe('urn:dialer:problem:unauthorized');
    }
    // the dashboard's assets and API too, not only its page
    expect((await get('/admin/queues/api/queues')).status).toBe(401);
  });

  it('refuses a token without the admin scope (403)', async () => {
    const response = await get('/admin/queues', basic('me', TOKENS.read));
    expect(response.status).toBe(403);
    expect(((await response.json()) as { detail: string }).detail).toContain('needs the `admin` scope; this token has: read');
  });

  it('serves the dashboard to an admin token given as the password or as a bearer token', async () => {
    const page = await get('/admin/queues', basic('anyone', TOKENS.admin));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('/admin/queues');
    expect((await get('/admin/queues', `Bearer ${TOKENS.all}`)).status).toBe(200);
  });

  it("lists the dialer's queues, read-only, with their jobs", async () => {
    const calls = new Queue(CALLS_QUEUE, { connection: api.redis, prefix: api.prefix });
    try {
      await calls.add('dial', { callId: 'dash-1' }, { jobId: 'dash-1', delay: 60_000 });
      const response = await get('/admin/queues/api/queues?activeQueue=calls&status=delayed', basic('admin', TOKENS.admin));
      expect(response.status).toBe(200);
      const body = (await response.json()) as { queues: { name: string; readOnlyMode: boolean; counts: Record<string, number> }[] };
      expect(body.queues.map((q) => q.name).sort()).toEqual(['call-outcome-watchdog', 'call-results', 'call-schedules', 'call-webhooks', 'calls']);
      expect(body.queues.every((q) => q.readOnlyMode)).toBe(true);
      expect(body.queues.find((q) => q.name === 'calls')?.counts.delayed).toBe(1);
      // read-only: removing a dial job through the dashboard is refused
      const removed = await fetch(`${api.url}/admin/queues/api/queues/calls/dash-1`, { method: 'DELETE', headers: { authorization: basic('admin', TOKENS.admin) } });
      expect(removed.status).toBeGreaterThanOrEqual(400);
      expect(await calls.getJob('dash-1')).toBeDefined();
    } finally {
      await calls.close();
    }
  });
});
