/**
 * Issue 14: a write the dialer waits to see replicated (a dial's sent mark, an attempt's end) is checked on the server
 * it went to. When the connection is made again between the write and its check (a failover: the primary died, the
 * replica was promoted), the check answers for a server that may never have seen the write, so the write counts as
 * not replicated: an attempt's end is written again, a claimed dial is taken back and claimed again later.
 */
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CallStore, type ReplicaShortfall } from '../../src/core/callStore.js';
import { createLogger } from '../../src/core/logger.js';
import { createWorkerConnection } from '../../src/core/redisConnection.js';
import { DialRateLimiter } from '../../src/consumer/dialRateLimiter.js';
import { systemClock } from '../../src/core/time.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const prefix = uniquePrefix('replica-acks');
const campaignId = 'acks';
const connections: Redis[] = [];
/** A worker connection to the single test Redis (no replicas: ROLE lists none, so WAIT alone would never hold a write back). */
const connect = (): Redis => {
  // the reconnections are this test's doing: their "connection lost/restored" lines are not worth printing
  const c = createWorkerConnection(testRedisUrl(), {}, { logger: createLogger('silent', 'test') });
  connections.push(c);
  return c;
};

afterAll(async () => {
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
  await Promise.all(connections.map((c) => c.quit()));
});

/**
 * Makes `redis` connect again on its next ROLE (the first step of the replica check after a write), after putting
 * `key` back as it was before the write: what a promoted replica that never received the write holds.
 */
function failOverBeforeTheCheck(redis: Redis, key: string, before: Buffer): void {
  const role = redis.role.bind(redis);
  vi.spyOn(redis, 'role').mockImplementationOnce(async () => {
    await redis.restore(key, 0, before, 'REPLACE');
    const ready = once(redis, 'ready');
    redis.disconnect(true);
    await ready;
    return role();
  });
}

/** A store on its own connection that waits for one replica, and the shortfalls it reported (with the write's kind). */
function storeWaitingForOneReplica(): { redis: Redis; store: CallStore; shortfalls: Array<[ReplicaShortfall, string]> } {
  const redis = connect();
  const shortfalls: Array<[ReplicaShortfall, string]> = [];
  const store = new CallStore(redis, prefix, systemClock, {
    dialReplicaAcks: { replicas: 1, timeoutMs: 100 },
    onReplicaShortfall: (shortfall, write) => shortfalls.push([shortfall, write]),
  });
  return { redis, store, shortfalls };
}

describe('a write checked for replicas after the connection was made again', () => {
  it("writes an attempt's end again on the server the connection reaches, instead of trusting a check made there", async () => {
    const { redis, store, shortfalls } = storeWaitingForOneReplica();
    const call = { callId: 'end-1', campaignId, phoneNumber: '+14155557960', metadata: {} };
    await store.createCalls(campaignId, [call]);
    await store.beginAttempt(call, 1, 'call-end-1-1', { dialSent: true });
    const key = store.keys.callRecord(campaignId, call.callId);
    const before = await redis.dumpBuffer(key);
    failOverBeforeTheCheck(redis, key, before);

    await store.endAttempt(campaignId, call.callId, 1, 'dialing', { result: 'declined', kind: 'final' });

    // the end is on the server reached after the reconnection (before: lost with the "old primary", the check passed)
    expect((await store.get(campaignId, call.callId))?.attemptLog.map((a) => a.result)).toEqual(['declined']);
    expect(shortfalls).toEqual([[{ acked: 0, wanted: 0, reconnected: true }, 'attempt_end']]);
  });

  it('takes a claimed dial back instead of sending it when the connection was made again before its check', async () => {
    const { redis, store, shortfalls } = storeWaitingForOneReplica();
    const call = { callId: 'claim-1', campaignId, phoneNumber: '+14155557961', metadata: {} };
    await store.createCalls(campaignId, [call]);
    await store.beginAttempt(call, 1, 'call-claim-1-1');
    const lock = { key: `${prefix}:test-lock:${call.callId}`, token: 'mine' };
    await redis.set(lock.key, lock.token, 'PX', 60_000);
    const key = store.keys.callRecord(campaignId, call.callId);
    const limiter = new DialRateLimiter(redis, `${prefix}:dialer:{acks-cps}:window`, 10);
    failOverBeforeTheCheck(redis, key, await redis.dumpBuffer(key));

    const claim = await store.claimDial(campaignId, call.callId, 1, lock, store.keys.platformBackoff(), limiter.startWindow());

    // not sent: the server reached now has no sent mark for it, so a dial now could ring again after a re-run
    expect(claim.status).toBe('backoff');
    expect(shortfalls).toEqual([[{ acked: 0, wanted: 0, reconnected: true }, 'dial_mark']]);
    expect(await store.get(campaignId, call.callId)).not.toHaveProperty('dialSentAttempt', 1);
    // with the connection steady, the next claim is good
    expect(await store.claimDial(campaignId, call.callId, 1, lock, store.keys.platformBackoff(), limiter.startWindow())).toEqual({ status: 'ok' });
  });
});
