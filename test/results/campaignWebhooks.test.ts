/**
 * A campaign object's webhook: its calls' outcomes go to its URL, signed with its secret; other campaigns' go to
 * RESULTS_WEBHOOK_URL, or nowhere when it is not set; an edited webhook holds from the next outcome.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { CallStore } from '../../src/core/callStore.js';
import { createLogger } from '../../src/core/logger.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signBody } from '../../src/core/signature.js';
import { systemClock } from '../../src/core/time.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { EVENT_ID_HEADER, WEBHOOKS_QUEUE } from '../../src/results/webhooks.js';
import { readRequestBody } from '../helpers/httpBody.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const url = testRedisUrl();
let baseline = 0;
let redis: Redis;
const servers: Server[] = [];
const workers: ResultsWorkerHandle[] = [];
/** What each receiver got, by its name. */
const received = new Map<string, { path: string | undefined; headers: IncomingMessage['headers']; body: string }[]>();

async function receiver(name: string): Promise<string> {
  received.set(name, []);
  const server = createServer((req, res) => {
    void readRequestBody(req).then((body) => {
      received.get(name)?.push({ path: req.url, headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`;
}

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  redis = new Redis(url);
});
afterAll(async () => {
  for (const w of workers) await w.close();
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  await redis.quit();
  await expectNoLeakedHandles(baseline);
});

/** Ends a ringing call of `campaignId` through the results worker, as its consumer would. */
async function endCall(prefix: string, campaignId: string, callId: string): Promise<void> {
  const store = new CallStore(redis, prefix, systemClock);
  const call = { callId, campaignId, phoneNumber: '+14155550150', metadata: {} };
  await store.createCalls(campaignId, [call]);
  await store.beginAttempt(call, 1, `call-${callId}-1`);
  const results = new ResultReporter(redis, prefix);
  try {
    await results.report({ callId, campaignId, outcome: 'busy', reportedBy: 'consumer', attempt: 1, endedAt: Date.now() });
  } finally {
    await results.close();
  }
  await waitFor(async () => ((await store.get(campaignId, callId))?.state === 'terminal' ? true : undefined), 10_000, `${callId} to end`);
}

const got = (name: string, callId: string) => (received.get(name) ?? []).filter((r) => r.headers[EVENT_ID_HEADER] === callId);

describe("a campaign's own webhook", () => {
  it("sends its calls' outcomes to its URL, signed with its secret; other campaigns' to RESULTS_WEBHOOK_URL; an edit holds from the next outcome", async () => {
    const prefix = uniquePrefix('campaign-webhooks');
    const [global, clinic, moved] = [await receiver('global'), await receiver('clinic'), await receiver('moved')];
    const campaigns = new CampaignStore(redis, prefix, systemClock);
    await campaigns.create({ id: 'clinic', webhook: { url: clinic, secret: 'clinic-secret' } });
    workers.push(await startResultsWorker({ config: { redisUrl: url, queuePrefix: prefix, logLevel: 'silent', webhook: { url: global, secret: 'global-secret' } }, logger: createLogger('silent') }));
    try {
      await endCall(prefix, 'clinic', 'cw-1');
      await endCall(prefix, 'survey', 'cw-2'); // implicit campaign: the global webhook
      await waitFor(() => (got('clinic', 'cw-1').length && got('global', 'cw-2').length ? true : undefined), 10_000, 'both deliveries');
      const [mine] = got('clinic', 'cw-1');
      expect(mine?.headers[SIGNATURE_HEADER]).toBe(signBody('clinic-secret', String(mine?.headers[TIMESTAMP_HEADER]), mine?.body ?? ''));
      const [theirs] = got('global', 'cw-2');
      expect(theirs?.headers[SIGNATURE_HEADER]).toBe(signBody('global-secret', String(theirs?.headers[TIMESTAMP_HEADER]), theirs?.body ?? ''));
      expect(got('global', 'cw-1')).toEqual([]);
      expect(got('clinic', 'cw-2')).toEqual([]);

      // moved while running, without a secret: the next outcome goes there, unsigned
      await campaigns.update('clinic', { webhook: { url: moved } });
      await endCall(prefix, 'clinic', 'cw-3');
      await waitFor(() => (got('moved', 'cw-3').length ? true : undefined), 10_000, 'the delivery to the new URL');
      expect(got('moved', 'cw-3')[0]?.headers[SIGNATURE_HEADER]).toBeUndefined();
      expect(got('clinic', 'cw-3')).toEqual([]);
    } finally {
      await workers.pop()?.close();
      await deleteKeysWithPrefix(redis, prefix);
    }
  }, 30_000);

  it('delivers a campaign webhook without RESULTS_WEBHOOK_URL, and queues nothing for campaigns without one', async () => {
    const prefix = uniquePrefix('campaign-webhooks-only');
    const only = await receiver('only');
    await new CampaignStore(redis, prefix, systemClock).create({ id: 'reminders', webhook: { url: only } });
    workers.push(await startResultsWorker({ config: { redisUrl: url, queuePrefix: prefix, logLevel: 'silent' }, logger: createLogger('silent') }));
    const webhooks = new Queue(WEBHOOKS_QUEUE, { connection: redis, prefix });
    try {
      await endCall(prefix, 'reminders', 'cw-4');
      await endCall(prefix, 'other', 'cw-5');
      await waitFor(() => (got('only', 'cw-4').length ? true : undefined), 10_000, 'the delivery');
      expect(await webhooks.getJob('cw-5')).toBeUndefined();
    } finally {
      await webhooks.close();
      await workers.pop()?.close();
      await deleteKeysWithPrefix(redis, prefix);
    }
  }, 30_000);
});
