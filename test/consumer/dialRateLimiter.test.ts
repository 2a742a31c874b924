import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { RedisClient } from '../../src/core/redisClient.js';
import { CLAIM_TO_SEND_MAX_MS, DialRateLimiter, startIntervalMs, startWindow, WINDOW_SAFETY_MARGIN_MS } from '../../src/consumer/dialRateLimiter.js';
import { CallStore } from '../../src/core/callStore.js';
import { dialerKeys } from '../../src/core/keys.js';
import { createLiveKitClients, PresignedSipClient, ROOM_TOKEN_REUSE_MS, SERVICE_TOKEN_TTL_S, SIP_TOKEN_REUSE_MS, signServiceToken } from '../../src/core/livekitClients.js';
import { AccessToken, TokenVerifier } from 'livekit-server-sdk';
import { GatedTwirpRpc, RequestNotSentError, withSendGate } from '../../src/core/twirpTransport.js';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { sleep, systemClock } from '../../src/core/time.js';
import { dialAttempt } from '../../src/consumer/dialAttempt.js';
import { dialDepsFor, silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { startCountingServer } from '../helpers/countingServer.js';
import { connectTestRedis, deleteKeysWithPrefix, uniquePrefix } from '../helpers/testRedis.js';
import { maxInRollingWindow, overLimitWindowsUnexplained, STAMP_AFTER_STALL_SLACK_MS, STAMP_STALL_MIN_MS, watchLoopStalls } from '../helpers/rollingWindow.js';

const prefix = uniquePrefix('limiter');
const connections: RedisClient[] = [];
/** A connection of one "process" to the run's topology (TEST_REDIS_TOPOLOGY), through the production factory. */
const connect = () => {
  const c = connectTestRedis();
  connections.push(c);
  return c;
};

afterAll(async () => {
  const cleaner = connectTestRedis();
  await deleteKeysWithPrefix(cleaner, prefix);
  await Promise.all([...connections, cleaner].map((c) => c.quit()));
});

describe('DialRateLimiter', () => {
  it('hands out slots across processes that never put more than the limit in a rolling window, evenly spaced', async () => {
    const cps = 20;
    const key = dialerKeys(prefix).dialWindow();
    // three "processes", each with its own connection and limiter, racing for 60 slots
    const limiters = [0, 1, 2].map(() => new DialRateLimiter(connect(), key, cps));
    const slots = await Promise.all(Array.from({ length: 60 }, (_, i) => (limiters[i % 3] as DialRateLimiter).reserve()));
    const times = slots.map((s) => s.slotAtMs).sort((a, b) => a - b);
    expect(maxInRollingWindow(times, startWindow(cps).windowMs)).toBeLessThanOrEqual(cps);
    for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBeCloseTo(startIntervalMs(cps), 1);
    // the pacing uses ≥ 95 % of the limit
    expect(startIntervalMs(cps)).toBeLessThanOrEqual(1000 / cps / 0.95);
  });

  it('rounds fractional limits down above one and widens the spacing below one', () => {
    expect(startIntervalMs(2.5)).toBeGreaterThanOrEqual(500);
    expect(startIntervalMs(0.5)).toBeGreaterThanOrEqual(2000);
    expect(startIntervalMs(50)).toBeLessThanOrEqual(1000 / 50 / 0.95);
  });

  it('gives the first caller an immediate slot and tells the next one how long to wait', async () => {
    const limiter = new DialRateLimiter(connect(), `${prefix}:dialer:{w}:window`, 1);
    const askedAt = performance.now();
    const first = await limiter.reserve();
    expect(first.waitMs).toBe(0);
    const second = await limiter.reserve();
    const elapsedMs = performance.now() - askedAt;
    // one interval (a second and a little) after the first slot, on Redis' clock; the wait is that interval less the
    // time between the two asks (a round trip or two; more on a loaded machine or through a cluster's redirections)
    expect(second.slotAtMs - first.slotAtMs).toBeCloseTo(startIntervalMs(1), 1);
    expect(startIntervalMs(1)).toBeGreaterThan(1000);
    expect(second.waitMs).toBeLessThanOrEqual(startIntervalMs(1));
    expect(second.waitMs).toBeGreaterThanOrEqual(startIntervalMs(1) - elapsedMs);
  });
});

describe('claimDial: the hard limit at the moment a start is claimed', () => {
  const campaignId = 'window';
  const redis = connect();
  const store = new CallStore(redis, prefix, systemClock);
  const backoffKey = store.keys.platformBackoff();

  /** A call dialing attempt 1 under a lock this test holds, ready to be claimed. */
  async function dialingCall(callId: string): Promise<{ key: string; token: string }> {
    const call = { callId, campaignId, phoneNumber: '+14155550100', metadata: {} };
    await store.createCalls(campaignId, [call]);
    await store.beginAttempt(call, 1, `call-${callId}-1`);
    const lock = { key: `${prefix}:test-lock:${callId}`, token: 'mine' };
    await redis.set(lock.key, lock.token, 'PX', 60_000);
    return lock;
  }

  it('refuses a start while the window holds the limit, however the starts bunched, and says when it opens', async () => {
    const limiter = new DialRateLimiter(redis, `${prefix}:dialer:{stall}:window`, 5);
    // five starts at once (late slots firing together after a stall) take the whole rolling window
    const firstAt = performance.now();
    for (let i = 0; i < 5; i++) {
      const lock = await dialingCall(`bunched-${i}`);
      expect(await store.claimDial(campaignId, `bunched-${i}`, 1, lock, backoffKey, limiter.startWindow())).toEqual({ status: 'ok' });
    }
    const lock = await dialingCall('bunched-5');
    const sixth = await store.claimDial(campaignId, 'bunched-5', 1, lock, backoffKey, limiter.startWindow());
    expect(sixth.status).toBe('window_full');
    // the first start leaves the window a second plus the margin after it was counted
    if (sixth.status === 'window_full') expect(performance.now() - firstAt + sixth.waitMs).toBeGreaterThan(1000 + WINDOW_SAFETY_MARGIN_MS);
    expect(await store.get(campaignId, 'bunched-5')).not.toHaveProperty('dialSentAttempt', 1);
  });

  it('keeps a start that was taken back in the window: it may count one that never went out, never miss one that did', async () => {
    const limiter = new DialRateLimiter(redis, `${prefix}:dialer:{release}:window`, 1);
    const lock = await dialingCall('released');
    expect(await store.claimDial(campaignId, 'released', 1, lock, backoffKey, limiter.startWindow())).toEqual({ status: 'ok' });
    expect(await store.releaseDial(campaignId, 'released', 1, lock)).toBe(true);
    expect(await store.get(campaignId, 'released')).not.toHaveProperty('dialSentAttempt', 1);
    const again = await store.claimDial(campaignId, 'released', 1, lock, backoffKey, limiter.startWindow());
    expect(again.status).toBe('window_full');
  });

  it("refuses a start past the call's end (its campaign's end or its expiry) at Redis' time, and counts nothing", async () => {
    const limiter = new DialRateLimiter(redis, `${prefix}:dialer:{ended}:window`, 5);
    const lock = await dialingCall('past-end');
    const window = limiter.startWindow();
    expect(await store.claimDial(campaignId, 'past-end', 1, lock, backoffKey, window, Date.now() - 1)).toEqual({ status: 'past_end' });
    expect(await redis.zcard(window.logKey)).toBe(0);
    expect(await store.get(campaignId, 'past-end')).not.toHaveProperty('dialSentAttempt', 1);
    // before the end it is claimed as usual
    expect(await store.claimDial(campaignId, 'past-end', 1, lock, backoffKey, limiter.startWindow(), Date.now() + 60_000)).toEqual({ status: 'ok' });
  });

  it('bounds the time from a claim to its send below the window margin', () => {
    // a claim's reply later than this is not sent (dialAttempt); the rest of the margin is the HTTP path and network
    expect(CLAIM_TO_SEND_MAX_MS).toBeLessThan(WINDOW_SAFETY_MARGIN_MS);
    expect(new DialRateLimiter(redis, 'x', 10).startWindow().marginMs).toBe(CLAIM_TO_SEND_MAX_MS);
  });
});

describe('PresignedSipClient', () => {
  const client = () => new PresignedSipClient('http://127.0.0.1:1', 'key', 'secret-of-at-least-32-characters-long!');

  it('signs the dial token once, ahead of the dial, and reuses it', async () => {
    const sip = client();
    const first = await sip.authHeader({}, { call: true });
    expect(await sip.authHeader({}, { call: true })).toBe(first);
    expect((await sip.authHeader({}, { admin: true })).Authorization).not.toBe(first.Authorization);
  });

  it('renews an aging token in the background and sends the current one meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const sip = client();
      const first = await sip.authHeader({}, { call: true });
      vi.setSystemTime(Date.now() + SIP_TOKEN_REUSE_MS + 1000);
      expect(await sip.authHeader({}, { call: true })).toBe(first); // still valid: sent while the new one is signed
      await vi.waitFor(async () => expect((await sip.authHeader({}, { call: true })).Authorization).not.toBe(first.Authorization));
    } finally {
      vi.useRealTimers();
    }
  });

  it('signs room and dispatch tokens synchronously with the claims the SDK signs, which LiveKit verifies', async () => {
    const grant = { roomAdmin: true, room: 'call-x-1' };
    const sdk = new AccessToken('key-1', 'secret-of-at-least-32-characters!', { ttl: '10m' });
    sdk.addGrant(grant);
    const expected = await new TokenVerifier('key-1', 'secret-of-at-least-32-characters!').verify(await sdk.toJwt());
    const token = signServiceToken('key-1', 'secret-of-at-least-32-characters!', grant, undefined, Date.now());
    const claims = await new TokenVerifier('key-1', 'secret-of-at-least-32-characters!').verify(token);
    expect(claims).toEqual({ ...expected, exp: claims.exp, nbf: claims.nbf });
    expect((claims.exp ?? 0) - (claims.nbf ?? 0)).toBe(SERVICE_TOKEN_TTL_S);
    expect(JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString())).toEqual({ alg: 'HS256' });
    await expect(new TokenVerifier('key-1', 'another-secret-of-32-characters!!').verify(token)).rejects.toThrow();
  });

  it("reuses a room's token across the room and dispatch clients for ROOM_TOKEN_REUSE_MS, and signs each room its own", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const { rooms, dispatch } = createLiveKitClients({ url: 'http://127.0.0.1:1', apiKey: 'key-1', apiSecret: 'secret-of-at-least-32-characters!' });
      const grant = { roomAdmin: true, room: 'call-x-1' };
      const first = await dispatch.authHeader(grant);
      expect(await rooms.authHeader({ ...grant })).toBe(first);
      const other = await rooms.authHeader({ roomAdmin: true, room: 'call-y-1' });
      expect(other.Authorization).not.toBe(first.Authorization);
      const claims = await new TokenVerifier('key-1', 'secret-of-at-least-32-characters!').verify(other.Authorization?.replace('Bearer ', '') ?? '');
      expect(claims.video).toEqual({ roomAdmin: true, room: 'call-y-1' });
      vi.setSystemTime(Date.now() + ROOM_TOKEN_REUSE_MS);
      expect(await rooms.authHeader(grant)).not.toBe(first); // signed afresh: a sent token keeps most of its lifetime
    } finally {
      vi.useRealTimers();
    }
  });

  it('signs room-scoped grants per request, as the SDK does', async () => {
    const sip = client();
    const a = await sip.authHeader({ roomAdmin: true, room: 'r1' }, { call: true });
    const b = await sip.authHeader({ roomAdmin: true, room: 'r1' }, { call: true });
    expect(a).not.toBe(b);
  });
});

describe('the send gate: a dial is written within CLAIM_TO_SEND_MAX_MS of its claim, or not at all', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
  });

  it('writes nothing when the gate refuses, so LiveKit never sees the dial', async () => {
    pipeline = await startTestPipeline('gate-refuses', { dialers: 0 });
    const p = pipeline;
    const { sip } = createLiveKitClients({ url: p.sim.url, apiKey: p.sim.apiKey, apiSecret: p.sim.apiSecret });
    const dialing = withSendGate(
      () => 'counted too long ago',
      () => sip.createSipParticipant(p.sim.outboundTrunkId, '+14155550111', 'gate-room', { participantIdentity: 'sip-gate', waitUntilAnswered: true }),
    );
    await expect(dialing).rejects.toBeInstanceOf(RequestNotSentError);
    expect(p.sim.calls.filter((c) => c.room === 'gate-room')).toHaveLength(0);
    // the same client dials normally once the gate lets it
    await withSendGate(
      () => undefined,
      () => sip.createSipParticipant(p.sim.outboundTrunkId, '+14155550111', 'gate-room', { participantIdentity: 'sip-gate', waitUntilAnswered: true }),
    );
    expect(p.sim.calls.filter((c) => c.room === 'gate-room')).toHaveLength(1);
  });

  it('keeps its warm connection when the gate refuses a request as it is made: the next one goes out on it', async () => {
    const server = await startCountingServer();
    try {
      const rpc = new GatedTwirpRpc(server.url);
      await rpc.request('SIP', 'CreateSIPParticipant', {}, {});
      await expect(withSendGate(() => 'counted too long ago', () => rpc.request('SIP', 'CreateSIPParticipant', {}, {}))).rejects.toBeInstanceOf(RequestNotSentError);
      await rpc.request('SIP', 'CreateSIPParticipant', {}, {});
      expect(server.connections()).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('gives a claim that came back too late its window entry back, claims again and dials once', async () => {
    pipeline = await startTestPipeline('stale-claim', { dialers: 0, network: { default: { type: 'answer', afterMs: 50 } } });
    const p = pipeline;
    /** Redis (or this process) stalls on the first claim's reply: it comes back after the claim-to-send bound. */
    class SlowFirstClaim extends CallStore {
      slowed = false;
      override async claimDial(...args: Parameters<CallStore['claimDial']>): ReturnType<CallStore['claimDial']> {
        const claim = await super.claimDial(...args);
        if (!this.slowed) {
          this.slowed = true;
          await sleep(CLAIM_TO_SEND_MAX_MS + 30);
        }
        return claim;
      }
    }
    const store = new SlowFirstClaim(p.redis, p.config.queuePrefix, systemClock);
    const deps = dialDepsFor(p, { store, limiter: new DialRateLimiter(p.redis, store.keys.dialWindow(), 5) });
    const lock = { key: `${p.config.callShards.prefixOf('stale')}:${CALLS_QUEUE}:stale-1:lock`, token: 'mine' };
    await p.redis.set(lock.key, 'mine', 'PX', 10_000);
    const job = { callId: 'stale-1', campaignId: 'stale', phoneNumber: '+14155550112', metadata: {}, enqueuedAt: Date.now() };
    const result = await dialAttempt(job, 1, deps, silentLogger, { lock });
    expect(result.status).toBe('answered');
    expect(store.slowed).toBe(true);
    expect(p.sim.calls.filter((c) => c.room === 'call-stale-1-1')).toHaveLength(1);
    // one start went out, one is counted: the stale claim's entry did not stay to cost the limit a start
    expect(await p.redis.zcard(`${store.keys.dialWindow()}:log`)).toBe(1);
  });
});

describe("a campaign's own rate at the moment its calls start", () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
  });

  it('holds the campaign rate where the carrier counts even when two of its calls reach their global slots together', async () => {
    // DIAL_CPS 10 would let both calls go 100 ms apart; the campaign's rate of 1 call/s must hold at the claim
    pipeline = await startTestPipeline('campaign-claim', { dialers: 0, network: { default: { type: 'busy', afterMs: 50 } } });
    const p = pipeline;
    const campaignLog = `${p.config.queuePrefix}:dialer:{slow-campaign}:dials`;
    const deps = dialDepsFor(p, { limiter: new DialRateLimiter(p.redis, p.store.keys.dialWindow(), 10), campaignRate: { logKey: campaignLog, cps: 1 } });
    // the simulator stamps arrivals in this process: a stall of this process delays a stamp, not the dial
    const probe = watchLoopStalls(STAMP_STALL_MIN_MS);
    const attempts = ['slow-a', 'slow-b'].map(async (callId, i) => {
      const lock = { key: `${p.config.callShards.prefixOf('slow-campaign')}:${CALLS_QUEUE}:${callId}:lock`, token: 'mine' };
      await p.redis.set(lock.key, 'mine', 'PX', 10_000);
      const job = { callId, campaignId: 'slow-campaign', phoneNumber: `+1415555012${i}`, metadata: {}, enqueuedAt: Date.now() };
      return dialAttempt(job, 1, deps, silentLogger, { lock });
    });
    const results = await Promise.all(attempts);
    const stalls = probe.stop();
    expect(results.map((r) => r.status)).toEqual(['failed', 'failed']);
    const arrivals = p.sim.calls.filter((c) => c.room.startsWith('call-slow-')).map((c) => c.receivedAt);
    expect(arrivals).toHaveLength(2);
    // 1 s apart or more, unless a stall of this process explains the shorter gap (999 ms was seen with two full test
    // runs at once on 2 cores): the campaign's limit holds in every rolling second
    expect(overLimitWindowsUnexplained(arrivals, 1000, 1, stalls, STAMP_AFTER_STALL_SLACK_MS), `stalls: ${JSON.stringify(stalls)}`).toEqual([]);
    // counted in the campaign's own log (the first start has left its window by the second)
    expect(await p.redis.zcard(campaignLog)).toBeGreaterThanOrEqual(1);
  });
});
