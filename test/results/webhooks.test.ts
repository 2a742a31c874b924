/** RESULTS_WEBHOOK_URL: each call's terminal outcome is POSTed once, signed, and retried until the receiver takes it. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { terminalTransition, type CallResult } from '../../src/core/outcomes.js';
import { NO_AGENT_REASON } from '../../src/consumer/agentPresence.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { systemClock } from '../../src/core/time.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signBody } from '../../src/core/signature.js';
import { EVENT_ID_HEADER, WEBHOOKS_QUEUE } from '../../src/results/webhooks.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { readRequestBody } from '../helpers/httpBody.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const url = testRedisUrl();
const prefix = uniquePrefix('webhooks');
const SECRET = 'whsec-test';
const campaignId = 'hooks';
let baseline = 0;
let redis: Redis;
let store: CallStore;
let reporter: ResultReporter;
let results: ResultsWorkerHandle;
let receiver: Server;
/** Another origin the receiver's redirects point to: it must never be reached. */
let elsewhere: Server;
let elsewhereUrl = '';
/** What the receiver got, and how it answers each call id's deliveries in turn (default 204; a 3xx redirects elsewhere). */
const received: { headers: IncomingMessage['headers']; body: string; at: number }[] = [];
const answers = new Map<string, number[]>();
const receivedElsewhere: { method: string | undefined; body: string }[] = [];
/** The results worker's log lines (warn and above), parsed. */
const logLines: Record<string, unknown>[] = [];
const HTTP_REDIRECTION_MIN = 300;
const HTTP_REDIRECTION_MAX = 399;
/** The first delay between delivery attempts, then doubling (BullMQ exponential backoff); 2 s in production. */
const FIRST_RETRY_DELAY_MS = 300;

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  receiver = createServer((req, res) => {
    void readRequestBody(req).then((body) => {
      received.push({ headers: req.headers, body, at: Date.now() });
      const id = String(req.headers[EVENT_ID_HEADER]);
      const status = answers.get(id)?.shift() ?? 204;
      const redirect = status >= HTTP_REDIRECTION_MIN && status <= HTTP_REDIRECTION_MAX;
      res.writeHead(status, redirect ? { location: elsewhereUrl } : {}).end();
    });
  });
  elsewhere = createServer((req, res) => {
    void readRequestBody(req).then((body) => {
      receivedElsewhere.push({ method: req.method, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
  elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/collect`;
  const webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/calls`;
  redis = new Redis(url);
  store = new CallStore(redis, prefix, systemClock);
  reporter = new ResultReporter(redis, prefix);
  results = await startResultsWorker({
    config: { redisUrl: url, queuePrefix: prefix, logLevel: 'silent', webhook: { url: webhookUrl, secret: SECRET } },
    webhookFirstRetryDelayMs: FIRST_RETRY_DELAY_MS,
    logger: pino({ level: 'warn' }, new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    })),
  });
});

afterAll(async () => {
  await results.close();
  await reporter.close();
  await redis.quit();
  for (const server of [receiver, elsewhere]) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  await deleteKeysWithPrefix(url, prefix);
  await expectNoLeakedHandles(baseline);
});

const deliveriesOf = (callId: string) => received.filter((r) => r.headers[EVENT_ID_HEADER] === callId);

/** A call whose phone is ringing (record `dialing`, attempt 1): its agent or consumer may end it. */
async function ringing(callId: string): Promise<void> {
  const call = { callId, campaignId, phoneNumber: '+14155550140', metadata: {} };
  await store.createCalls(campaignId, [call]);
  await store.beginAttempt(call, 1, `call-${callId}-1`);
}

describe('result webhooks', () => {
  it('POSTs the terminal outcome once, signed over timestamp and body; a later report of the same call sends nothing', async () => {
    await ringing('hook-1');
    const result: CallResult = { callId: 'hook-1', campaignId, outcome: 'voicemail', reason: 'message left', reportedBy: 'agent', attempt: 1, endedAt: Date.now() };
    await reporter.report(result);
    await waitFor(() => (deliveriesOf('hook-1').length > 0 ? true : undefined), 5000, 'the webhook');

    const [delivery] = deliveriesOf('hook-1');
    expect(delivery?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(delivery?.body ?? '{}')).toEqual({ event: 'call.ended', ...result });
    const timestamp = String(delivery?.headers[TIMESTAMP_HEADER]);
    expect(delivery?.headers[SIGNATURE_HEADER]).toBe(signBody(SECRET, timestamp, delivery?.body ?? ''));

    // A second, different report for the ended call, after both the result and the delivery jobs are gone (their
    // retention ended): applied nowhere, sent nowhere.
    const resultsQueue = new Queue(CALL_RESULTS_QUEUE, { connection: redis, prefix });
    const webhooks = new Queue(WEBHOOKS_QUEUE, { connection: redis, prefix });
    try {
      await waitFor(async () => ((await webhooks.getJobState('hook-1')) === 'completed' ? true : undefined), 5000, 'the delivery to complete');
      await webhooks.remove('hook-1');
      await resultsQueue.remove('hook-1');
      await reporter.report({ ...result, outcome: 'failed', reason: 'a late report', endedAt: Date.now() + 1 });
      await waitFor(async () => ((await resultsQueue.getJobState('hook-1')) === 'completed' ? true : undefined), 5000, 'the late report');
      // applied nowhere; and the worker queues a delivery before it completes a result's job: none was queued
      expect((await resultsQueue.getJob('hook-1'))?.returnvalue).toEqual({ applied: false });
      expect(await webhooks.getJob('hook-1')).toBeUndefined();
    } finally {
      await resultsQueue.close();
      await webhooks.close();
    }
    expect(deliveriesOf('hook-1')).toHaveLength(1);
  });

  it("delivers the consumer's no-agent outcome when an agent's refused report took the call's slot on call-results first", async () => {
    await ringing('hook-no-agent');
    // the consumer hung the last attempt up for want of an agent: attempt ended, then the call's outcome on the record
    const lock = { key: `${prefix}:test-lock:hook-no-agent`, token: 'consumer-1' };
    await redis.set(lock.key, lock.token);
    const noAgent = { result: 'failed', kind: 'retry', reason: NO_AGENT_REASON } as const;
    expect(await store.endAttemptWithoutAgent(campaignId, 'hook-no-agent', 1, lock, noAgent, 'dialing')).toEqual({ status: 'ended' });
    const consumerOutcome: CallResult = { callId: 'hook-no-agent', campaignId, outcome: 'failed', reason: NO_AGENT_REASON, reportedBy: 'consumer', attempt: 1, endedAt: Date.now() };
    expect((await store.applyTransition(consumerOutcome, terminalTransition(consumerOutcome))).status).toBe('applied');
    // an agent that joined just then reported first: its report holds jobId = call id, so the consumer's report was a
    // no-op and only the agent's (refused) report is on call-results
    await reporter.report({ callId: 'hook-no-agent', campaignId, outcome: 'answered', reportedBy: 'agent', attempt: 1, endedAt: Date.now() });
    await waitFor(() => (deliveriesOf('hook-no-agent').length > 0 ? true : undefined), 5000, "the consumer's outcome delivered");
    expect(JSON.parse(deliveriesOf('hook-no-agent')[0]?.body ?? '{}')).toMatchObject({ event: 'call.ended', outcome: 'failed', reason: NO_AGENT_REASON, reportedBy: 'consumer', attempt: 1, endedAt: consumerOutcome.endedAt });
    // the consumer's report arriving after all sends nothing more
    await reporter.report(consumerOutcome);
    const resultsQueue = new Queue(CALL_RESULTS_QUEUE, { connection: redis, prefix });
    try {
      await waitFor(async () => ((await resultsQueue.getJobState('hook-no-agent')) === 'completed' ? true : undefined), 5000, "the consumer's report");
    } finally {
      await resultsQueue.close();
    }
    expect(deliveriesOf('hook-no-agent')).toHaveLength(1);
  });

  it('retries with backoff while the receiver fails, until it answers 2xx', async () => {
    answers.set('hook-2', [500, 503]);
    await ringing('hook-2');
    await reporter.report({ callId: 'hook-2', campaignId, outcome: 'busy', reportedBy: 'consumer', sipStatusCode: 486, sipStatus: 'Busy Here', attempt: 3, endedAt: Date.now() });
    await waitFor(() => (deliveriesOf('hook-2').length >= 3 ? true : undefined), 20_000, 'three deliveries');
    const webhooks = new Queue(WEBHOOKS_QUEUE, { connection: redis, prefix });
    try {
      await waitFor(async () => ((await webhooks.getJobState('hook-2')) === 'completed' ? true : undefined), 5000, 'the delivery to complete');
      expect((await webhooks.getJob('hook-2'))?.attemptsMade).toBe(3);
    } finally {
      await webhooks.close();
    }
    const bodies = deliveriesOf('hook-2').map((d) => d.body);
    expect(bodies).toHaveLength(3);
    // backoff: the second retry waited at least twice the first delay
    const [first, second, third] = deliveriesOf('hook-2').map((d) => d.at) as [number, number, number];
    expect(second - first).toBeGreaterThanOrEqual(FIRST_RETRY_DELAY_MS);
    expect(third - second).toBeGreaterThanOrEqual(2 * FIRST_RETRY_DELAY_MS);
    expect(new Set(bodies).size).toBe(1); // the same event each time: the receiver dedupes by x-dialer-event-id
  });

  it.each([302, 307])('never follows a redirect: a %i is a failed delivery, retried, and the other origin gets nothing', async (status) => {
    const callId = `hook-redirect-${status}`;
    answers.set(callId, [status]);
    await ringing(callId);
    await reporter.report({ callId, campaignId, outcome: 'answered', reportedBy: 'agent', attempt: 1, summary: 'private', endedAt: Date.now() });
    await waitFor(() => (deliveriesOf(callId).length >= 2 ? true : undefined), 20_000, 'a retry after the redirect');
    const webhooks = new Queue(WEBHOOKS_QUEUE, { connection: redis, prefix });
    try {
      const job = await waitFor(async () => {
        const j = await webhooks.getJob(callId);
        return j?.finishedOn ? j : undefined;
      }, 5000, 'the delivery to complete');
      // the redirect counted as a failure, then the 204
      expect(job.attemptsMade).toBe(2);
      expect(job.returnvalue).toEqual({ status: 204 });
    } finally {
      await webhooks.close();
    }
    expect(deliveriesOf(callId).every((d) => d.body.includes('"callId"'))).toBe(true);
    expect(receivedElsewhere).toEqual([]);
    const failures = logLines.filter((l) => l.callId === callId && l.msg === 'webhook delivery failed; BullMQ retries it');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ status, err: expect.stringContaining('redirect: not followed') });
  });
});
