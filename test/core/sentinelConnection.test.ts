import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { createLogger } from '../../src/core/logger.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { closeConnection, createProducerConnection, createWorkerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { DEFAULT_SENTINEL_PORT, parseHostPorts, type RedisTarget } from '../../src/core/redisTarget.js';
import { systemClock } from '../../src/core/time.js';
import { hasRedisServer, startSentinelTopology, type SentinelTopology } from '../helpers/redisTopology.js';
import { waitFor } from '../helpers/waitFor.js';

/**
 * Issue 14: a connection through Sentinel that is closed lets go of everything it opened. ioredis' failover
 * detector (failoverDetector: true, set by the connection factory) subscribes to `+switch-master` on every sentinel
 * over connections of its own, and `quit()` left them open (ioredis issue #1362, fixed upstream only by
 * redis/ioredis#2198): three sockets per closed connection, which keep a finished command-line process from exiting.
 * Found by the dial pipeline's tests through Sentinel (npm run test:pipeline:sentinel: "test left 9 network handles").
 */

const TEST_TIMEOUT_MS = 60_000;
/** How long the sentinels get to see a closed subscription go. */
const RELEASE_TIMEOUT_MS = 5000;
/** How long an ended connection gets to connect again (it does at once: ioredis' first retry delay at most). */
const HEAL_TIMEOUT_MS = 5000;

describe.skipIf(!hasRedisServer)('connections through Redis Sentinel', () => {
  let topology: SentinelTopology;
  let target: RedisTarget;
  const reporting = { logger: createLogger('silent', 'test'), level: 'debug' as const };

  /** Subscribers (our failover detectors) each sentinel has, summed. */
  const sentinelSubscribers = async (): Promise<number> => {
    let total = 0;
    for (const port of topology.sentinelPorts) {
      const sentinel = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await sentinel.connect();
        const list = String(await sentinel.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
        total += list.split('\n').filter((line) => line.trim() !== '').length;
      } finally {
        sentinel.disconnect();
      }
    }
    return total;
  };

  beforeAll(async () => {
    topology = await startSentinelTopology();
    target = { kind: 'sentinel', url: 'redis://127.0.0.1:1', sentinels: parseHostPorts(topology.sentinels, 'sentinels', DEFAULT_SENTINEL_PORT), name: topology.name };
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await topology?.close();
  });

  it(
    'closes its failover detector\'s sentinel subscriptions when it is closed (worker, its duplicate, producer)',
    async () => {
      const before = await sentinelSubscribers();
      const worker = createWorkerConnection(target, {}, reporting);
      const duplicate = worker.duplicate();
      const producer = createProducerConnection(target, {}, reporting);
      const opened: RedisClient[] = [worker, duplicate, producer];
      for (const c of opened) await waitUntilReady(c);
      await worker.set('sentinel-connection-test', '1', 'PX', 1000);
      // every connection watches the sentinels for +switch-master: three sentinels each
      await waitFor(async () => ((await sentinelSubscribers()) >= before + 3 * opened.length ? true : undefined), RELEASE_TIMEOUT_MS, 'the detectors subscribed');

      await Promise.all(opened.map((c) => closeConnection(c)));
      const after = await waitFor(
        async () => {
          const n = await sentinelSubscribers();
          return n === before ? n : undefined;
        },
        RELEASE_TIMEOUT_MS,
        'the sentinels to see every subscription closed',
      ).catch(() => sentinelSubscribers());
      expect(after).toBe(before);
    },
    TEST_TIMEOUT_MS,
  );

  it.each(['worker', 'producer'] as const)(
    'a %s connection that ioredis ends while it asks the sentinels for the primary (its failover detector firing mid-reconnect) connects again on its own',
    async (kind) => {
      const lines: string[] = [];
      const logged = { logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }), level: 'warn' as const };
      const node = target;
      if (node.kind === 'cluster') throw new Error('the topology is a Sentinel one');
      const connection = kind === 'worker' ? createWorkerConnection(node, {}, logged) : createProducerConnection(node, {}, logged);
      try {
        await waitUntilReady(connection);
        // ioredis' FailoverDetector, on +switch-master, calls its connector's disconnect(). When that comes while the
        // client is reconnecting (the old primary died: the client asks the sentinels where the new one is), the
        // connector's connect() rejects and ioredis ends the client for good (Redis._connect sets status `end`): a
        // loaded CI run lost its results worker's connection this way in the Sentinel failover test.
        const connector = Reflect.get(connection, 'connector') as { disconnect(): void };
        let ended = false;
        connection.once('end', () => (ended = true));
        connection.once('connecting', () => connector.disconnect());
        connection.stream.destroy();
        await waitFor(() => (ended ? true : undefined), HEAL_TIMEOUT_MS, `ioredis to end the client (status ${connection.status})`);
        await waitFor(() => (connection.status === 'ready' ? true : undefined), HEAL_TIMEOUT_MS, `the connection back (status ${connection.status})`);
        expect(await connection.set(`sentinel-connection-heal-${kind}`, '1', 'PX', 1000)).toBe('OK');
        expect(lines.join('')).toContain('connecting again');
      } finally {
        await closeConnection(connection);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "writes an attempt's end again when ioredis ends the connection under it, instead of failing the dial job (whose next run would ring the callee again)",
    async () => {
      const node = target;
      if (node.kind === 'cluster') throw new Error('the topology is a Sentinel one');
      const connection = createWorkerConnection(node, {}, reporting);
      const retries: string[] = [];
      const store = new CallStore(connection, 'end-retry', systemClock, { onAttemptEndRetry: (err) => retries.push(err.message) });
      const campaignId = 'end-retry';
      const call = { callId: 'declined-1', campaignId, phoneNumber: '+14155557990', metadata: {} };
      try {
        await waitUntilReady(connection);
        await store.createCalls(campaignId, [call]);
        await store.beginAttempt(call, 1, 'call-declined-1-1', { dialSent: true });
        // The end is written while the client is between sockets, and ioredis then ends it (its failover detector
        // firing mid-reconnect, as in the test above): ioredis rejects what it held with "Connection is closed.".
        const connector = Reflect.get(connection, 'connector') as { disconnect(): void };
        connection.once('connecting', () => connector.disconnect());
        const written = new Promise<void>((resolve, reject) => {
          connection.once('close', () => {
            store.endAttempt(campaignId, call.callId, 1, 'dialing', { result: 'declined', kind: 'final', sipStatusCode: 603 }).then(resolve, reject);
          });
        });
        connection.stream.destroy();
        await written;
        expect(retries).toContain('Connection is closed.');
        expect((await store.get(campaignId, call.callId))?.attemptLog.map((a) => a.result)).toEqual(['declined']);
      } finally {
        await connection.del(store.keys.callRecord(campaignId, call.callId), store.keys.campaignCounters(campaignId), store.keys.campaignCalls(campaignId), store.keys.campaignIndex()).catch(() => undefined);
        await closeConnection(connection);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
