import { randomUUID } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_PATH } from '../../src/api/dashboard.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { body, call, useApiFixture, type Answer, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-openapi'), (f) => (api = f));

type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>> };
let doc: Doc;

beforeAll(async () => {
  const answer = await call(api.url, 'GET', '/openapi.json');
  expect(answer.status).toBe(200);
  doc = body(answer) as Doc;
});

/** The routes the server really serves, as `METHOD /path/{param}`, read from fastify's route tree (HEAD left out). */
function servedRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const branch = line.search(/[├└]── /);
    if (branch === -1) continue;
    const depth = branch / 4;
    const match = /^(\S+) \(([^)]+)\)$/.exec(line.slice(branch + 4).trim()) ?? /^(\S+)$/.exec(line.slice(branch + 4).trim());
    if (!match?.[1]) continue;
    const path = `${stack[depth - 1] ?? ''}${match[1]}`;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (match[2] ?? '').split(',').map((m) => m.trim()).filter((m) => m && m !== 'HEAD')) {
      out.push(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return out.sort();
}

/** Validates an answer against the document: its status and media type must be documented, its body match the schema. */
function makeChecker(document: Doc) {
  const ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true });
  addFormatsPlugin.default(ajv);
  ajv.addSchema(document, 'openapi');
  const escape = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
  return (method: string, path: string, answer: Answer) => {
    const operation = document.paths[path]?.[method.toLowerCase()];
    if (!operation) throw new Error(`${method} ${path} is not in the document`);
    const status = String(answer.status);
    const response = operation.responses[status];
    if (!response) throw new Error(`${method} ${path} answered ${status}, which the document does not list (${Object.keys(operation.responses).join(', ')})`);
    const mediaType = answer.contentType.split(';')[0]?.trim() ?? '';
    if (!response.content?.[mediaType]) throw new Error(`${method} ${path} ${status}: media type ${mediaType} is not documented`);
    const pointer = `openapi#/paths/${escape(path)}/${method.toLowerCase()}/responses/${status}/content/${escape(mediaType)}/schema`;
    const validate = ajv.compile({ $ref: pointer });
    const data = mediaType.endsWith('json') ? answer.json : answer.text;
    if (!validate(data)) throw new Error(`${method} ${path} ${status} does not match its schema: ${ajv.errorsText(validate.errors)}\n${answer.text.slice(0, 500)}`);
  };
}

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect((doc as unknown as { openapi: string }).openapi).toBe('3.1.0');
  });

  it('lists exactly the routes the server serves', () => {
    const documented = Object.entries(doc.paths)
      .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    // the queue dashboard (bull-board, for people in a browser) is not part of the API the document describes
    const served = servedRoutes(api.server.app.printRoutes({ commonPrefix: false })).filter((r) => !r.split(' ')[1]?.startsWith(DASHBOARD_PATH));
    expect(documented).toEqual(served);
  });

  it('describes every real answer: each status, media type and body a request got matches the document', async () => {
    const check = makeChecker(doc);
    const campaign = `oa-${randomUUID().slice(0, 8)}`;
    const seen = new Set<string>();
    const run = async (method: string, path: string, url: string, options: Parameters<typeof call>[3] = {}) => {
      const answer = await call(api.url, method, url, options);
      check(method, path, answer);
      seen.add(`${method} ${path} ${answer.status}`);
      return answer;
    };

    const created = await run('POST', '/v1/calls', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155550901', campaign_id: campaign, key: 'k1' } });
    const callId = String(body(created).call_id);
    await run('POST', '/v1/calls', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155550901', campaign_id: campaign, key: 'k1' } });
    await run('POST', '/v1/calls', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155550902', campaign_id: campaign, key: 'k1' } });
    await run('POST', '/v1/calls', '/v1/calls', { token: 'enqueue', body: { phone_number: 'nope' } });
    await run('POST', '/v1/calls', '/v1/calls', { token: 'enqueue', body: { phone_number: 5 } });
    await run('POST', '/v1/calls', '/v1/calls', { body: { phone_number: '+14155550903' } });
    await run('POST', '/v1/calls', '/v1/calls', { token: 'read', body: { phone_number: '+14155550903' } });
    await run('POST', '/v1/calls', '/v1/calls', { token: 'enqueue', rawBody: 'x', headers: { 'content-type': 'text/plain' } });
    await run('POST', '/v1/calls', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155550904', metadata: { x: 'y'.repeat(70_000) } } });

    await run('POST', '/v1/campaigns/{id}/calls', `/v1/campaigns/${campaign}/calls`, {
      token: 'enqueue',
      body: { calls: [{ phone_number: '+14155550905' }, { phone_number: 'bad' }, { phone_number: '+14155550905' }] },
    });
    await run('POST', '/v1/campaigns/{id}/calls', `/v1/campaigns/${campaign}/calls`, { token: 'enqueue', body: { calls: [] } });

    await run('GET', '/v1/calls/{id}', `/v1/calls/${callId}`, { token: 'read' });
    await api.store.applyTerminal({
      callId,
      campaignId: campaign,
      outcome: 'transferred',
      reportedBy: 'agent',
      endedAt: Date.now(),
      durationMs: 12_500,
      transfer: { mode: 'cold', target: 'tel:+12025550100' },
      surveyAnswers: [{ question: 'q', answer: 'a' }],
      summary: 's',
      transcript: [{ role: 'agent', text: 'hello' }],
    });
    await run('GET', '/v1/calls/{id}', `/v1/calls/${callId}?transcript=true`, { token: 'read' });
    await run('GET', '/v1/calls/{id}', '/v1/calls/c-missing', { token: 'read' });
    await run('GET', '/v1/calls/{id}', '/v1/calls/c-1?bogus=1', { token: 'read' });

    // ended as transferred above: not cancelable any more (409)
    await run('DELETE', '/v1/calls/{id}', `/v1/calls/${callId}`, { token: 'admin' });
    const [other] = (body(await call(api.url, 'POST', `/v1/campaigns/${campaign}/calls`, { token: 'enqueue', body: { calls: [{ phone_number: '+14155550906' }] } })).results as { call_id: string }[]);
    await run('DELETE', '/v1/calls/{id}', `/v1/calls/${other?.call_id ?? ''}`, { token: 'admin' });
    await run('DELETE', '/v1/calls/{id}', '/v1/calls/c-missing', { token: 'admin' });

    const later = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
    const scheduled = String(body(await call(api.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155550908', campaign_id: campaign, at: later(1) } })).call_id);
    await run('POST', '/v1/calls/{id}/move', `/v1/calls/${scheduled}/move`, { token: 'admin', body: { at: later(2) } });
    await run('POST', '/v1/calls/{id}/move', `/v1/calls/${scheduled}/move`, { token: 'admin', body: { at: later(100) } });
    await run('POST', '/v1/calls/{id}/move', `/v1/calls/${callId}/move`, { token: 'admin', body: { at: later(2) } });
    await run('POST', '/v1/calls/{id}/move', '/v1/calls/c-missing/move', { token: 'admin', body: { at: later(2) } });
    await run('POST', '/v1/calls/{id}/move', `/v1/calls/${scheduled}/move`, { token: 'admin', body: { when: 'tomorrow' } });
    const keyed = `${campaign}-key`;
    await call(api.url, 'POST', '/v1/calls', { token: 'enqueue', body: { phone_number: '+14155550909', campaign_id: keyed, key: 'appt', at: later(1) } });
    await run('POST', '/v1/campaigns/{id}/calls/move', `/v1/campaigns/${keyed}/calls/move`, { token: 'admin', body: { key: 'appt', at: later(2) } });
    await run('POST', '/v1/campaigns/{id}/calls/move', `/v1/campaigns/${keyed}/calls/move`, { token: 'admin', body: { key: 'appt', at: later(100) } });
    await run('POST', '/v1/campaigns/{id}/calls/move', `/v1/campaigns/${keyed}/calls/move`, { token: 'admin', body: { key: 'nobody', at: later(2) } });
    await run('POST', '/v1/campaigns/{id}/calls/move', `/v1/campaigns/${keyed}/calls/move`, { token: 'admin', body: { at: later(2) } });
    await call(api.url, 'POST', `/v1/calls/${scheduled}/move`, { token: 'admin', body: { at: new Date().toISOString() } });
    await run('POST', '/v1/campaigns/{id}/calls/move', `/v1/campaigns/${campaign}/calls/move`, { token: 'admin', body: { key: 'k1', at: later(2) } });

    await run('POST', '/v1/campaigns/{id}/pause', `/v1/campaigns/${campaign}/pause`, { token: 'admin' });
    await run('POST', '/v1/campaigns/{id}/resume', `/v1/campaigns/${campaign}/resume`, { token: 'admin' });
    await run('POST', '/v1/campaigns/{id}/cancel', `/v1/campaigns/${campaign}/cancel`, { token: 'admin' });
    await run('POST', '/v1/campaigns/{id}/cancel', '/v1/campaigns/nobody-here/cancel', { token: 'admin' });

    await run('GET', '/v1/campaigns/{id}/report', `/v1/campaigns/${campaign}/report`, { token: 'read' });
    await run('GET', '/v1/campaigns/{id}/report', `/v1/campaigns/${campaign}/report?format=csv`, { token: 'read' });
    await run('GET', '/v1/campaigns/{id}/report', '/v1/campaigns/nobody-here/report', { token: 'read' });

    const defined = `oa-def-${randomUUID().slice(0, 8)}`;
    await run('POST', '/v1/campaigns', '/v1/campaigns', { token: 'admin', body: { id: defined, cps: 2, window: { hours: '09:00-17:00' } } });
    await run('POST', '/v1/campaigns', '/v1/campaigns', { token: 'admin', body: { id: defined } });
    await run('POST', '/v1/campaigns', '/v1/campaigns', { token: 'admin', body: { id: 'x', cps: -1 } });
    await run('GET', '/v1/campaigns', '/v1/campaigns', { token: 'read' });
    await run('GET', '/v1/campaigns/{id}', `/v1/campaigns/${defined}`, { token: 'read' });
    await run('GET', '/v1/campaigns/{id}', '/v1/campaigns/nobody-here', { token: 'read' });
    await run('PATCH', '/v1/campaigns/{id}', `/v1/campaigns/${defined}`, { token: 'admin', body: { max_active_calls: 3 } });
    await run('PATCH', '/v1/campaigns/{id}', `/v1/campaigns/${defined}`, { token: 'admin', rawBody: '{"__proto__": {"cps": 1}}' });
    await run('POST', '/v1/campaigns/{id}/archive', `/v1/campaigns/${defined}/cancel`.replace('/cancel', '/archive'), { token: 'admin' });
    await run('PATCH', '/v1/campaigns/{id}', `/v1/campaigns/${defined}`, { token: 'admin', body: { cps: 1 } });

    await run('POST', '/v1/schedules', '/v1/schedules', { token: 'admin', body: { id: defined, cron: '0 9 * * mon', calls: [{ phone_number: '+14155550907' }] } });
    await run('POST', '/v1/schedules', '/v1/schedules', { token: 'admin', body: { id: defined, cron: 'never', calls: [{ phone_number: '+14155550907' }] } });
    await run('GET', '/v1/schedules', '/v1/schedules', { token: 'read' });
    await run('DELETE', '/v1/schedules/{id}', `/v1/schedules/${defined}`, { token: 'admin' });
    await run('DELETE', '/v1/schedules/{id}', `/v1/schedules/${defined}`, { token: 'admin' });

    await run('GET', '/healthz', '/healthz');
    await run('GET', '/healthz', '/healthz?probe=1');
    await run('GET', '/readyz', '/readyz');
    await run('GET', '/openapi.json', '/openapi.json');

    expect([...seen].sort()).toEqual(
      [
        'POST /v1/calls 201',
        'POST /v1/calls 200',
        'POST /v1/calls 409',
        'POST /v1/calls 422',
        'POST /v1/calls 400',
        'POST /v1/calls 401',
        'POST /v1/calls 403',
        'POST /v1/calls 415',
        'POST /v1/calls 413',
        'POST /v1/campaigns/{id}/calls 200',
        'POST /v1/campaigns/{id}/calls 400',
        'GET /v1/calls/{id} 200',
        'GET /v1/calls/{id} 404',
        'GET /v1/calls/{id} 400',
        'DELETE /v1/calls/{id} 200',
        'DELETE /v1/calls/{id} 404',
        'DELETE /v1/calls/{id} 409',
        'POST /v1/calls/{id}/move 200',
        'POST /v1/calls/{id}/move 400',
        'POST /v1/calls/{id}/move 404',
        'POST /v1/calls/{id}/move 409',
        'POST /v1/calls/{id}/move 422',
        'POST /v1/campaigns/{id}/calls/move 200',
        'POST /v1/campaigns/{id}/calls/move 400',
        'POST /v1/campaigns/{id}/calls/move 404',
        'POST /v1/campaigns/{id}/calls/move 409',
        'POST /v1/campaigns/{id}/calls/move 422',
        'POST /v1/campaigns/{id}/pause 200',
        'POST /v1/campaigns/{id}/resume 200',
        'POST /v1/campaigns/{id}/cancel 200',
        'POST /v1/campaigns/{id}/cancel 404',
        'GET /v1/campaigns/{id}/report 200',
        'GET /v1/campaigns/{id}/report 404',
        'POST /v1/campaigns 201',
        'POST /v1/campaigns 409',
        'POST /v1/campaigns 400',
        'GET /v1/campaigns 200',
        'GET /v1/campaigns/{id} 200',
        'GET /v1/campaigns/{id} 404',
        'PATCH /v1/campaigns/{id} 200',
        'PATCH /v1/campaigns/{id} 409',
        'PATCH /v1/campaigns/{id} 422',
        'POST /v1/campaigns/{id}/archive 200',
        'POST /v1/schedules 200',
        'POST /v1/schedules 400',
        'GET /v1/schedules 200',
        'DELETE /v1/schedules/{id} 200',
        'DELETE /v1/schedules/{id} 404',
        'GET /healthz 200',
        'GET /healthz 400',
        'GET /readyz 503',
        'GET /openapi.json 200',
      ].sort(),
    );
  });

  it('catches an answer that breaks the document (the checker itself can fail)', () => {
    const check = makeChecker(doc);
    const fake = (status: number, json: unknown): Answer => ({ status, contentType: 'application/json', headers: new Headers(), text: JSON.stringify(json), json });
    expect(() => check('POST', '/v1/calls', fake(201, { call_id: 'c-1' }))).toThrow(/does not match/);
    expect(() => check('POST', '/v1/calls', fake(201, { call_id: 'c-1', campaign_id: 'x', extra: 1 }))).toThrow(/does not match/);
    expect(() => check('POST', '/v1/calls', fake(418, {}))).toThrow(/does not list/);
    expect(() => check('GET', '/healthz', fake(200, { status: 'ok' }))).not.toThrow();
  });
});
