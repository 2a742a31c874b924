import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { systemClock } from '../../src/core/time.js';
import { loadConfig } from '../../src/core/config.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { hasRedisServer, startSentinelTopology, type SentinelTopology } from '../helpers/redisTopology.js';
import { waitFor } from '../helpers/waitFor.js';

/** Issue 14: a campaign keeps its promises when the Redis primary dies and Sentinel promotes the replica. */


const CAMPAIGN = 'failover';
const CALLS = 60;
/** Calls that ring this long before they decline (603, final): each attempt ends with one outcome and no retry. */
const RING_MS = 400;
/** Part of the campaign placed before the primary is killed. */
const KILL_AFTER_OUTCOMES = 15;
const CAMPAIGN_TIMEOUT_MS = 90_000;

describe.skipIf(!hasRedisServer)('Redis Sentinel failover in the middle of a campaign', () => {
  let topology: SentinelTopology;
  let p: TestPipeline;
  /** The workers' log: a number rung twice shows what the consumers did with its call (a re-ring on 2 December showed none). */
  const log = memoryLogger();

  beforeAll(async () => {
    topology = await startSentinelTopology();
    p = await startTestPipeline('sentinel', {
      logger: log.logger,
      network: { default: { type: 'decline', afterMs: RING_MS } },
      env: {
        REDIS_URL: 'redis://127.0.0.1:1', // ignored for the primary's address once REDIS_SENTINELS is set
        REDIS_SENTINELS: topology.sentinels,
        REDIS_SENTINEL_NAME: topology.name,
        DIAL_CPS: '20',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await p?.close().catch(() => undefined); // the topology's teardown below frees what this could not
    await topology?.close();
  });

  /** What a call that did not end looks like: its record, its jobs on `calls` and `call-results`, its dials. */
  const unended = async (ids: readonly string[]) => {
    const out: unknown[] = [];
    const resultsQueue = new Queue(CALL_RESULTS_QUEUE, { connection: p.redis, prefix: p.config.queuePrefix });
    for (const id of ids) {
      const record = await p.store.get(CAMPAIGN, id);
      if (record?.state === 'terminal') continue;
      const job = await p.calls.getJob(id);
      const resultJob = await resultsQueue.getJob(id);
      out.push({
        id,
        state: record?.state,
        attempts: record?.attemptLog.map((a) => a.result ?? 'open'),
        job: job ? { state: await job.getState(), attemptsMade: job.attemptsMade, failedReason: job.failedReason } : 'none',
        result: resultJob ? await resultJob.getState() : 'none',
        dials: p.sim.calls.filter((c) => c.room.startsWith(`call-${id}-`)).map((c) => [c.room, c.result]),
      });
    }
    await resultsQueue.close();
    return out;
  };

  /**
   * What the dialer did with numbers rung more than once: each dial (room = call and attempt, ms after the kill, when
   * it reached the simulator and how it ended) and the call's record, so a failed run shows which write was lost.
   */
  const dialsOf = async (rungAgain: readonly string[], ids: readonly string[], killedAt: number, failoverMs: number) => {
    const out: unknown[] = [{ failoverMs }];
    for (const number of rungAgain) {
      const dials = p.sim.calls.filter((c) => c.phoneNumber === number);
      const id = ids.find((callId) => dials.some((c) => c.room.startsWith(`call-${callId}-`)));
      const record = id === undefined ? undefined : await p.store.get(CAMPAIGN, id);
      out.push({
        number,
        id,
        dials: dials.map((c) => ({ room: c.room, atMsAfterKill: c.receivedAt - killedAt, result: c.result, endReason: c.endReason })),
        record: record && { state: record.state, outcome: record.outcome, reason: record.reason, attemptLog: record.attemptLog },
        log: id === undefined ? [] : log.linesWith(id),
      });
    }
    return out;
  };

  it('validates REDIS_SENTINELS at start-up and names the bad entry', () => {
    expect(() => loadConfig({ REDIS_SENTINELS: '127.0.0.1:26379, nohost:port' })).toThrow(/REDIS_SENTINELS: "nohost:port" is not host:port/);
    expect(loadConfig({ REDIS_SENTINELS: '10.0.0.5, [::1]:26380', REDIS_SENTINEL_NAME: 'dialer' }).redis).toEqual({
      kind: 'sentinel',
      url: 'redis://127.0.0.1:6379',
      name: 'dialer',
      sentinels: [
        { host: '10.0.0.5', port: 26379 },
        { host: '::1', port: 26380 },
      ],
    });
  });

  it('sends no dial whose mark no replica has acknowledged, and dials it once the replica is back', async () => {
    const campaignId = 'replica-ack';
    const number = '+14155557900';
    topology.freezeReplica(true);
    let thawed = false;
    try {
      const callId = await p.enqueue({ phoneNumber: number, campaignId });
      // the consumer claims, WAITs 500 ms for the frozen replica, takes the claim back and backs off 1 s; twice over
      const frozenMs = 3000;
      const until = Date.now() + frozenMs;
      await waitFor(async () => ((await p.store.get(campaignId, callId))?.state === 'dialing' ? true : undefined), 10_000, 'attempt begun');
      await waitFor(() => (Date.now() > until ? true : undefined), frozenMs + 1000, 'the frozen period');
      expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(0);
      topology.freezeReplica(false);
      thawed = true;
      expect(await p.waitForOutcome(campaignId, callId, 30_000)).toMatchObject({ outcome: 'declined', attempts: 1 });
      expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
    } finally {
      if (!thawed) topology.freezeReplica(false);
    }
  }, 60_000);

  it("writes an attempt's end again until a replica holds it (a few times at most), so a failover cannot lose it", async () => {
    const campaignId = 'attempt-end-acks';
    let shortfalls = 0;
    const store = new CallStore(p.redis, p.config.queuePrefix, systemClock, {
      dialReplicaAcks: { replicas: 1, timeoutMs: 200 },
      onReplicaShortfall: () => (shortfalls += 1),
    });
    const call = { callId: 'acks-1', campaignId, phoneNumber: '+14155557950', metadata: {} };
    await store.createCalls(campaignId, [call]);
    await store.beginAttempt(call, 1, 'call-acks-1-1', { dialSent: true });
    topology.freezeReplica(true);
    try {
      await store.endAttempt(campaignId, call.callId, 1, 'dialing', { result: 'declined', kind: 'final' });
    } finally {
      topology.freezeReplica(false);
    }
    // written 4 times, each followed by a WAIT the frozen replica never answered: 3 shortfalls, then the dialer goes on
    expect(shortfalls).toBe(3);
    expect((await store.get(campaignId, call.callId))?.attemptLog.map((a) => a.result)).toEqual(['declined']);
    await store.endAttempt(campaignId, call.callId, 1, 'dialing', { result: 'declined', kind: 'final' });
    expect(shortfalls).toBe(3);
  });

  it('rings every number once and ends every call with one outcome while the primary is killed and the replica promoted', async () => {
    const ids: string[] = [];
    const numbers = new Set<string>();
    for (let i = 0; i < CALLS; i++) {
      const number = `+1415555${String(7000 + i).padStart(4, '0')}`;
      numbers.add(number);
      ids.push(await p.enqueue({ phoneNumber: number, campaignId: CAMPAIGN }));
    }
    await waitFor(async () => ((await p.store.counters(CAMPAIGN)).terminal >= KILL_AFTER_OUTCOMES ? true : undefined), CAMPAIGN_TIMEOUT_MS, 'first outcomes');

    const killedAt = Date.now();
    const oldPrimary = await topology.killPrimary();
    const newPrimary = await topology.waitForFailover(oldPrimary);
    const failoverMs = Date.now() - killedAt;
    expect(newPrimary).not.toBe(oldPrimary);

    const counters = await waitFor(
      async () => {
        const c = await p.store.counters(CAMPAIGN).catch(() => undefined);
        return c && c.terminal >= CALLS ? c : undefined;
      },
      CAMPAIGN_TIMEOUT_MS,
      'every call to end',
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}; calls not ended: ${JSON.stringify(await unended(ids))}`);
    });
    // exactly one outcome per call: the counters count each terminal transition once
    expect(counters.total).toBe(CALLS);
    expect(counters.terminal).toBe(CALLS);
    for (const id of ids) expect(await p.store.get(CAMPAIGN, id)).toMatchObject({ state: 'terminal', outcome: 'declined' });

    // never two dials for one attempt, and nobody who declined is rung again: one dial per number
    const dialsPerNumber = new Map<string, number>();
    for (const call of p.sim.calls.filter((c) => numbers.has(c.phoneNumber))) dialsPerNumber.set(call.phoneNumber, (dialsPerNumber.get(call.phoneNumber) ?? 0) + 1);
    expect(dialsPerNumber.size).toBe(CALLS);
    const rungAgain = [...dialsPerNumber].filter(([, dials]) => dials > 1).map(([number]) => number);
    expect(rungAgain, `numbers rung more than once: ${JSON.stringify(await dialsOf(rungAgain, ids, killedAt, failoverMs))}`).toEqual([]);
    // the figure README quotes
    console.info(`sentinel failover: calls=${CALLS} failover_ms=${failoverMs} max_dials_per_number=${Math.max(...dialsPerNumber.values())}`);
  }, 180_000);
});
