/** PREDIAL_CHECK_URL: asked before every attempt; "no" skips the call, a failing check holds it back (fail closed). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import { loadConfig } from '../../src/core/config.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signBody } from '../../src/core/signature.js';
import { readRequestBody } from '../helpers/httpBody.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

const SECRET = 'predial-secret';
const campaignId = 'eligible';
let p: TestPipeline;
let checker: Server;
let dialer: DialWorkerHandle;
/** Requests the check service got, and its answer per phone number (a status, or a JSON body). */
const asked: { body: Record<string, unknown>; signatureOk: boolean }[] = [];
const answers = new Map<string, { status: number; body?: unknown }[]>();

beforeAll(async () => {
  checker = createServer((req, res) => {
    void readRequestBody(req).then((text) => {
      const body = JSON.parse(text) as Record<string, unknown>;
      const signatureOk = req.headers[SIGNATURE_HEADER] === signBody(SECRET, String(req.headers[TIMESTAMP_HEADER]), text);
      asked.push({ body, signatureOk });
      const answer = answers.get(String(body.phoneNumber))?.shift() ?? { status: 200, body: { dial: true } };
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => checker.listen(0, '127.0.0.1', resolve));
  p = await startTestPipeline('predial', { dialers: 0, network: { default: { type: 'answer', afterMs: 10, callee: { kind: 'human' } } } });
  const url = `http://127.0.0.1:${(checker.address() as AddressInfo).port}/can-call`;
  dialer = await startDialWorker({ config: loadConfig({ ...p.env, PREDIAL_CHECK_URL: url, PREDIAL_CHECK_SECRET: SECRET }), logger: silentLogger });
});

afterAll(async () => {
  await dialer.close(true);
  await p.close();
  checker.closeAllConnections();
  await new Promise<void>((resolve) => checker.close(() => resolve()));
});

const rang = (number: string) => p.sim.calls.filter((c) => c.phoneNumber === number);

describe('pre-dial eligibility check', () => {
  it('asks before the attempt with the call, signed; "dial: true" rings it', async () => {
    const callId = await p.enqueue({ phoneNumber: '+14155559101', campaignId, metadata: { order: 'A-1' } });
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 5000, 'the call');
    const request = asked.find((a) => a.body.callId === callId);
    expect(request).toMatchObject({ signatureOk: true, body: { event: 'call.predial', campaignId, phoneNumber: '+14155559101', attempt: 1, metadata: { order: 'A-1' } } });
    expect(rang('+14155559101')).toHaveLength(1);
  });

  it('"dial: false" ends the call as skipped with the reason given, without ringing', async () => {
    answers.set('+14155559102', [{ status: 200, body: { dial: false, reason: 'appointment canceled' } }]);
    const callId = await p.enqueue({ phoneNumber: '+14155559102', campaignId });
    const record = await p.waitForOutcome(campaignId, callId);
    expect(record).toMatchObject({ outcome: 'skipped', reason: 'pre-dial check: appointment canceled', attempts: 0 });
    expect(rang('+14155559102')).toEqual([]);
  });

  it('a check that fails (HTTP 500, or a malformed answer) holds the call back without an attempt; it rings once the check says yes', async () => {
    answers.set('+14155559103', [{ status: 500 }, { status: 200, body: { maybe: true } }]);
    const callId = await p.enqueue({ phoneNumber: '+14155559103', campaignId });
    for (let failures = 1; failures <= 2; failures++) {
      await waitFor(async () => ((await p.calls.getJobState(callId)) === 'delayed' ? true : undefined), 5000, 'the call to wait');
      expect(rang('+14155559103')).toEqual([]);
      expect(await p.store.get(campaignId, callId)).toMatchObject({ state: 'queued', attempts: 0 });
      await (await p.calls.getJob(callId))?.promote(); // instead of waiting out the 30 s before it asks again
      await waitFor(() => (asked.filter((a) => a.body.callId === callId).length > failures ? true : undefined), 5000, 'the next check');
    }
    await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'in_call' ? true : undefined), 5000, 'the call');
    expect(await p.store.get(campaignId, callId)).toMatchObject({ attempts: 1 });
  });
});
