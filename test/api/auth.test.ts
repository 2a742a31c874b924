import { describe, expect, it } from 'vitest';
import { authenticate, parseApiTokens } from '../../src/api/tokens.js';
import { ConfigError } from '../../src/core/errors.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { TOKENS, body, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-auth'), (f) => (api = f));

const newCall = (n: number) => ({ phone_number: `+1415555${String(1000 + n)}`, campaign_id: 'auth' });

describe('API_TOKENS', () => {
  it('reads bare tokens as every scope and token:scope+scope as those scopes', () => {
    const [all, some] = parseApiTokens(' tok-a , tok-b:read+admin ');
    expect(all && [...all.scopes].sort()).toEqual(['admin', 'enqueue', 'read']);
    expect(some && [...some.scopes].sort()).toEqual(['admin', 'read']);
  });

  it('refuses an empty list, an unknown scope and a repeated token, naming API_TOKENS but never the token', () => {
    expect(() => parseApiTokens(undefined)).toThrow(/API_TOKENS: not set/);
    expect(() => parseApiTokens('  ')).toThrow(ConfigError);
    expect(() => parseApiTokens('secret-one:read+write')).toThrow(/API_TOKENS: entry 1: unknown scope "write"/);
    expect(() => parseApiTokens('a,,b')).toThrow(/entry 2 is empty/);
    expect(() => parseApiTokens('dup,dup:read')).toThrow(/entry 2: the same token is listed twice/);
    expect(() => parseApiTokens('has space')).toThrow(/entry 1: a token may hold only/);
    try {
      parseApiTokens('secret-one:write');
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-one');
    }
  });

  it('finds a token whatever its length relative to the others, and no prefix or extension of it', () => {
    const tokens = parseApiTokens('short,a-much-longer-token-than-the-first-one:read');
    expect(authenticate(tokens, 'Bearer short')).toMatchObject({ status: 'ok' });
    expect(authenticate(tokens, 'bearer a-much-longer-token-than-the-first-one')).toMatchObject({ status: 'ok' });
    expect(authenticate(tokens, 'Bearer shor')).toEqual({ status: 'unknown' });
    expect(authenticate(tokens, 'Bearer shortx')).toEqual({ status: 'unknown' });
    expect(authenticate(tokens, 'Basic c2hvcnQ6')).toMatchObject({ status: 'malformed' });
    expect(authenticate(tokens, undefined)).toEqual({ status: 'missing' });
  });
});

describe('authentication and scopes over HTTP', () => {
  it('answers 401 without a token, saying a bearer token is missing', async () => {
    const answer = await call(api.url, 'POST', '/v1/calls', { body: newCall(1) });
    const doc = problem(answer, 401);
    expect(doc.type).toBe('urn:dialer:problem:unauthorized');
    expect(doc.detail).toMatch(/no bearer token/);
    expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="dialer"');
  });

  it('answers 401 for a token that is not configured, saying so', async () => {
    const answer = await call(api.url, 'GET', '/v1/calls/c-1', { authorization: `Bearer ${TOKENS.all}x` });
    expect(problem(answer, 401).detail).toMatch(/not one of API_TOKENS/);
    expect(answer.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('answers 401 for another scheme than Bearer', async () => {
    const answer = await call(api.url, 'GET', '/v1/calls/c-1', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` });
    expect(problem(answer, 401).detail).toMatch(/malformed/);
  });

  it('answers 403 naming the missing scope and the scopes the token has', async () => {
    const enqueueWithRead = await call(api.url, 'POST', '/v1/calls', { token: 'read', body: newCall(2) });
    const doc = problem(enqueueWithRead, 403);
    expect(doc.type).toBe('urn:dialer:problem:forbidden');
    expect(doc.detail).toBe('this route needs the `enqueue` scope; this token has: read');
    expect(enqueueWithRead.headers.get('www-authenticate')).toContain('error="insufficient_scope", scope="enqueue"');

    expect(problem(await call(api.url, 'GET', '/v1/calls/c-1', { token: 'enqueue' }), 403).detail).toMatch(/needs the `read` scope/);
    expect(problem(await call(api.url, 'POST', '/v1/campaigns/auth/pause', { token: 'enqueueRead' }), 403).detail).toMatch(
      /needs the `admin` scope; this token has: enqueue, read/,
    );
    expect(problem(await call(api.url, 'DELETE', '/v1/calls/c-1', { token: 'read' }), 403).detail).toMatch(/`admin`/);
  });

  it('checks the token before the body: a refused token learns nothing about its request', async () => {
    const answer = await call(api.url, 'POST', '/v1/calls', { token: 'read', rawBody: '{not json' });
    problem(answer, 403);
  });

  it('lets each scope do its own routes', async () => {
    const created = await call(api.url, 'POST', '/v1/calls', { token: 'enqueue', body: newCall(3) });
    expect(created.status).toBe(201);
    const callId = String(body(created).call_id);
    expect((await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'read' })).status).toBe(200);
    expect((await call(api.url, 'DELETE', `/v1/calls/${callId}`, { token: 'admin' })).status).toBe(200);
    expect((await call(api.url, 'GET', `/v1/calls/${callId}`, { token: 'all' })).status).toBe(200);
  });

  it('serves the health checks and the document without a token', async () => {
    expect((await call(api.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(api.url, 'GET', '/openapi.json')).status).toBe(200);
    expect([200, 503]).toContain((await call(api.url, 'GET', '/readyz')).status);
  });
});
