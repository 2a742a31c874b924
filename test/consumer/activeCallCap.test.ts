import type { ChildProcess } from 'node:child_process';
import type { RedisClient } from '../../src/core/redisClient.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ActiveCallLeases } from '../../src/core/activeCallLeases.js';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig } from '../../src/core/config.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { systemClock } from '../../src/core/time.js';
import type { LiveKitSim } from '../../src/sim/index.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { connectTestRedis, deleteKeysWithPrefix, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';
import { startConsumerProcess as startConsumer } from '../helpers/consumerProcess.js';

const numbers = (count: number, base: number) => Array.from({ length: count }, (_, i) => `+1415557${String(base + i).padStart(4, '0')}`);
const call = (callId: string, campaignId = 'cap') => ({ campaignId, callId });

describe('leases of calls in progress (ActiveCallLeases)', () => {
  let redis: RedisClient;
  let prefix: string;
  let leases: ActiveCallLeases;

  beforeAll(() => {
    redis = connectTestRedis(); // the run's topology (TEST_REDIS_TOPOLOGY), through the production factory
  });
  afterEach(async () => {
    await deleteKeysWithPrefix(redis, prefix);
  });
  afterAll(async () => {
    await redis.quit();
  });
  const fresh = (name: string) => {
    prefix = uniquePrefix(name);
    leases = new ActiveCallLeases(redis, prefix);
    return leases;
  };

  it('gives out leases up to the cap and refuses the next, naming the cap', async () => {
    fresh('lease-cap');
    expect(await leases.acquire(call('a'), { limit: 2, ttlMs: 60_000 })).toEqual({ held: true, active: 1 });
    expect(await leases.acquire(call('b'), { limit: 2, ttlMs: 60_000 })).toEqual({ held: true, active: 2 });
    expect(await leases.acquire(call('c'), { limit: 2, ttlMs: 60_000 })).toMatchObject({ held: false, active: 2, scope: 'global' });
    // a call that holds its lease renews it whatever the count (a re-run of its job never waits for itself)
    expect(await leases.acquire(call('a'), { limit: 2, ttlMs: 60_000 })).toEqual({ held: true, active: 2 });
    await leases.release(call('a'));
    expect(await leases.acquire(call('c'), { limit: 2, ttlMs: 60_000 })).toEqual({ held: true, active: 2 });
  });

  it('lets inbound calls use the reserved capacity that outbound dials leave free', async () => {
    fresh('lease-inbound');
    // DIAL_MAX_ACTIVE_CALLS=3, DIAL_RESERVED_INBOUND=1: outbound asks with limit 2, inbound is only counted
    await leases.acquire(call('out-1'), { limit: 2, ttlMs: 60_000 });
    await leases.acquire(call('out-2'), { limit: 2, ttlMs: 60_000 });
    expect((await leases.acquire(call('out-3'), { limit: 2, ttlMs: 60_000 })).held).toBe(false);
    expect(await leases.acquire(call('in-1', 'inbound'), { limit: 0, ttlMs: 60_000 })).toEqual({ held: true, active: 3 });
    expect(await leases.count()).toBe(3);
    await leases.release(call('out-1'));
    // the inbound call still counts: one outbound slot is back, not two
    expect((await leases.acquire(call('out-3'), { limit: 2, ttlMs: 60_000 })).held).toBe(false);
    await leases.release(call('in-1', 'inbound'));
    expect((await leases.acquire(call('out-3'), { limit: 2, ttlMs: 60_000 })).held).toBe(true);
  });

  it('frees a lease whose holder stopped renewing it, and never brings a lapsed one back', async () => {
    fresh('lease-ttl');
    await leases.acquire(call('a'), { limit: 1, ttlMs: 150 });
    expect((await leases.acquire(call('b'), { limit: 1, ttlMs: 150 })).held).toBe(false);
    await waitFor(async () => ((await leases.count()) === 0 ? true : undefined), 5000, 'lease lapsed');
    expect(await leases.renew(call('a'), 60_000)).toBe(false);
    expect((await leases.acquire(call('b'), { limit: 1, ttlMs: 60_000 })).held).toBe(true);
  });

  it('holds a campaign to its own cap inside the global one', async () => {
    fresh('lease-campaign');
    const ask = (id: string, campaignId: string) => leases.acquire(call(id, campaignId), { limit: 10, campaignLimit: 1, ttlMs: 60_000 });
    expect((await ask('a1', 'a')).held).toBe(true);
    expect(await ask('a2', 'a')).toMatchObject({ held: false, scope: 'campaign' });
    expect((await ask('b1', 'b')).held).toBe(true);
    expect(await leases.count('a')).toBe(1);
  });

  it("releases a call's lease when its terminal outcome is applied", async () => {
    fresh('lease-release');
    const store = new CallStore(redis, prefix, systemClock);
    const identity = { callId: 'in-7', campaignId: 'inbound', phoneNumber: '+14155550100', metadata: {} };
    await store.recordAgentCall(identity, 'room-7');
    expect(await leases.count()).toBe(1);
    await store.applyTransition({ callId: 'in-7', campaignId: 'inbound', outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() }, undefined);
    expect(await leases.count()).toBe(0);
  });
});

/** Calls in progress at the simulated phone network: from each dial to its failure or hang-up. */
function trackActiveAtSim(sim: LiveKitSim): { max(): number; now(): number } {
  let active = 0;
  let max = 0;
  sim.events.on('call_dialing', () => {
    active += 1;
    max = Math.max(max, active);
  });
  sim.events.on('call_failed', () => {
    active -= 1;
  });
  sim.events.on('call_ended', () => {
    active -= 1;
  });
  return { max: () => max, now: () => active };
}

/** Stands in for the agent: reports `answered` when the callee hangs up (the consumer's room is call-<id>-<attempt>). */
function reportHangups(sim: LiveKitSim, reporter: ResultReporter, campaignId: string): void {
  sim.events.on('call_ended', (event) => {
    const match = /^call-(.+)-(\d+)$/.exec(event.room);
    if (!match?.[1]) return;
    void reporter.report({ callId: match[1], campaignId, outcome: 'answered', attempt: Number(match[2]), reportedBy: 'agent', endedAt: Date.now() });
  });
}

async function startConsumerProcess(env: Record<string, string>): Promise<ChildProcess> {
  return (await startConsumer(env, 60_000)).child;
}

describe('DIAL_MAX_ACTIVE_CALLS across consumer processes', () => {
  let pipeline: TestPipeline | undefined;
  let reporter: ResultReporter | undefined;
  const children: ChildProcess[] = [];

  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    await reporter?.close();
    reporter = undefined;
    await pipeline?.close();
    pipeline = undefined;
  });

  it('never has more calls in progress at the phone network than the cap less the inbound reserve, with 3 consumers', async () => {
    const campaignId = 'cap-three';
    pipeline = await startTestPipeline('active-cap', {
      dialers: 0,
      env: { DIAL_MAX_ACTIVE_CALLS: '4', DIAL_RESERVED_INBOUND: '1', DIAL_CONCURRENCY: '5', DIAL_CPS: '50' },
      network: { default: { type: 'answer', afterMs: 50, hangupAfterMs: 400 } },
    });
    const p = pipeline;
    const active = trackActiveAtSim(p.sim);
    reporter = new ResultReporter(p.redis, p.config.queuePrefix);
    reportHangups(p.sim, reporter, campaignId);
    children.push(...(await Promise.all([0, 1, 2].map(() => startConsumerProcess(p.env)))));

    const list = numbers(9, 0); // three rounds at the cap
    const { enqueued } = await p.producer.enqueueCalls(list.map((phoneNumber) => ({ phoneNumber, campaignId })));
    for (const { callId } of enqueued) await p.waitForOutcome(campaignId, callId, 60_000);

    expect(p.sim.calls).toHaveLength(list.length); // every number rang once, none twice
    expect(active.max()).toBeLessThanOrEqual(3);
    expect(active.max()).toBe(3); // and the cap was used, not just respected
    const leases = new ActiveCallLeases(p.redis, p.config.queuePrefix);
    expect(await leases.count()).toBe(0); // every outcome gave its lease back
  });

  it('lets the leases of a consumer killed (SIGKILL) while its calls ring lapse once those calls could ring no more', async () => {
    const campaignId = 'cap-kill';
    // ringing timeout 4 s, lock 1 s: a dialing lease lives 4 + 2 × 1 + 5 = 11 s without renewal
    pipeline = await startTestPipeline('active-kill', {
      dialers: 0,
      env: { DIAL_MAX_ACTIVE_CALLS: '2', DIAL_LOCK_DURATION_MS: '1000', DIAL_RINGING_TIMEOUT_S: '4', DIAL_CPS: '50' },
      network: { default: { type: 'answer', afterMs: 60_000 } }, // they ring on (rang out by LiveKit after 4 s)
    });
    const p = pipeline;
    const leases = new ActiveCallLeases(p.redis, p.config.queuePrefix);
    const child = await startConsumerProcess(p.env);
    children.push(child);
    await p.producer.enqueueCalls(numbers(3, 100).map((phoneNumber) => ({ phoneNumber, campaignId })));
    await waitFor(() => (p.sim.calls.filter((c) => c.status === 'ringing').length === 2 ? true : undefined), 20_000, 'two phones ringing');
    expect(await leases.count()).toBe(2);
    expect(p.sim.calls).toHaveLength(2); // the third waits for a lease

    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const killedAt = Date.now();
    // nobody renews them now; they outlive the ringing (no capacity is handed out while the phones may still ring)…
    expect(await leases.count()).toBe(2);
    // …and then lapse, instead of being held for ever by a dead process
    await waitFor(async () => ((await leases.count()) === 0 ? true : undefined), 20_000, 'leases of the killed consumer freed');
    expect(Date.now() - killedAt).toBeGreaterThan(4000);
  }, 60_000);

  it('keeps the cap at the phone network when another consumer takes a killed one\'s ringing calls over', async () => {
    const campaignId = 'cap-takeover';
    pipeline = await startTestPipeline('active-takeover', {
      dialers: 0,
      env: { DIAL_MAX_ACTIVE_CALLS: '2', DIAL_LOCK_DURATION_MS: '1000', DIAL_RINGING_TIMEOUT_S: '20', DIAL_CPS: '50' },
      network: { default: { type: 'answer', afterMs: 50, hangupAfterMs: 300 } },
    });
    const p = pipeline;
    const active = trackActiveAtSim(p.sim);
    reporter = new ResultReporter(p.redis, p.config.queuePrefix);
    reportHangups(p.sim, reporter, campaignId);
    const leases = new ActiveCallLeases(p.redis, p.config.queuePrefix);
    const [slow1, slow2, next] = numbers(3, 200) as [string, string, string];
    p.sim.network.setBehavior(slow1, { type: 'answer', afterMs: 4000, hangupAfterMs: 300 });
    p.sim.network.setBehavior(slow2, { type: 'answer', afterMs: 4000, hangupAfterMs: 300 });

    const child = await startConsumerProcess(p.env);
    children.push(child);
    const { enqueued } = await p.producer.enqueueCalls([slow1, slow2, next].map((phoneNumber) => ({ phoneNumber, campaignId })));
    await waitFor(() => (p.sim.calls.filter((c) => c.status === 'ringing').length === 2 ? true : undefined), 20_000, 'two phones ringing');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));

    await p.startDialer(); // takes the stalled jobs over (renewing their leases), follows the ringing calls, then dials the third
    for (const { callId } of enqueued) await p.waitForOutcome(campaignId, callId, 30_000);
    expect(p.sim.calls).toHaveLength(3); // no phone rang twice
    expect(active.max()).toBeLessThanOrEqual(2);
    expect(await leases.count()).toBe(0);
  }, 60_000);
});

describe('DIAL_MAX_ACTIVE_CALLS settings', () => {
  it('refuses an inbound reserve that leaves no outbound capacity, or has no cap to be kept from', () => {
    expect(() => loadConfig({ DIAL_MAX_ACTIVE_CALLS: '2', DIAL_RESERVED_INBOUND: '2' })).toThrow(/DIAL_RESERVED_INBOUND: must be below DIAL_MAX_ACTIVE_CALLS/);
    expect(() => loadConfig({ DIAL_RESERVED_INBOUND: '1' })).toThrow(/needs DIAL_MAX_ACTIVE_CALLS/);
    expect(loadConfig({ DIAL_MAX_ACTIVE_CALLS: '5', DIAL_RESERVED_INBOUND: '1' }).dial.activeCalls).toEqual({ max: 5, reservedInbound: 1 });
    expect(loadConfig({}).dial.activeCalls).toBeUndefined();
  });
});
