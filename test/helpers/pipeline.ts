import type { Queue } from 'bullmq';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig, type DialerConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import type { Logger } from 'pino';
import type { RedisClient } from '../../src/core/redisClient.js';
import { createWorkerConnection } from '../../src/core/redisConnection.js';
import { CallQueues } from '../../src/core/callQueues.js';
import { systemClock } from '../../src/core/time.js';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import type { DialDeps } from '../../src/consumer/dialAttempt.js';
import { DialRateLimiter } from '../../src/consumer/dialRateLimiter.js';
import { PlatformBackoff } from '../../src/consumer/platformBackoff.js';
import { createLiveKitClients } from '../../src/core/livekitClients.js';
import { CallProducer, type CallRequest } from '../../src/producer/enqueueCalls.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { startStandInAgent, type SimAgentWorker } from '../../src/harness/simAgentWorker.js';
import { startLiveKitSim, type LiveKitSim, type ScenarioInput } from '../../src/sim/index.js';
import { deleteKeysWithPrefix, testRedisEnv, uniquePrefix } from './testRedis.js';
import { waitFor } from './waitFor.js';

/** What tests do with the `calls` queue. */
export type CallsView = Pick<Queue, 'add' | 'getJob' | 'getJobState' | 'getActiveCount' | 'getJobs' | 'close'>;

/** The `calls` queues of every shard read as one: pushes go to QUEUE_PREFIX's own, lookups search them all. */
function callsView(calls: CallQueues): CallsView {
  const primary = calls.primary();
  const findJob: Queue['getJob'] = async (jobId) => calls.findJob(jobId);
  return {
    add: (name, data, opts) => primary.add(name, data, opts),
    getJob: findJob,
    getJobState: async (jobId) => {
      for (const queue of calls.all()) {
        const state = await queue.getJobState(jobId);
        if (state !== 'unknown') return state;
      }
      return 'unknown';
    },
    getActiveCount: async () => (await Promise.all(calls.all().map((q) => q.getActiveCount()))).reduce((a, b) => a + b, 0),
    getJobs: async (types, start, end, asc) => (await Promise.all(calls.all().map((q) => q.getJobs(types, start, end, asc)))).flat(),
    close: () => calls.close(),
  };
}

/** A dial pipeline against the simulator with its own queue prefix: producer, dial workers, results worker. */
export interface TestPipeline {
  sim: LiveKitSim;
  config: DialerConfig;
  redis: RedisClient;
  store: CallStore;
  producer: CallProducer;
  /**
   * The `calls` queue as tests read it: QUEUE_PREFIX's own, where they push jobs; with call shards (TEST_CALL_SHARDS)
   * a job or its state is looked up in every shard's queue (a campaign's jobs are on its shard's).
   */
  calls: CallsView;
  results: ResultsWorkerHandle;
  dialers: DialWorkerHandle[];
  env: Record<string, string>;
  /** The stand-in agent host that takes every dispatch (`agent: 'stand-in'`, the default); undefined with `agent: 'none'`. */
  standInAgent: SimAgentWorker | undefined;
  startDialer(): Promise<DialWorkerHandle>;
  enqueue(request: CallRequest): Promise<string>;
  waitForOutcome(campaignId: string, callId: string, timeoutMs?: number): Promise<NonNullable<Awaited<ReturnType<CallStore['get']>>>>;
  close(): Promise<void>;
}

export const silentLogger = createLogger('silent');

/** The settings that say where Redis is: a test giving any of them in `env` brings its own topology. */
const REDIS_LOCATION_SETTINGS = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const;

/** Test DIAL_CPS of dialDepsFor: high enough that pacing never slows a test that does not look at it. */
const DIRECT_DIAL_CPS = 50;
/** Ringing timeout (s) of dialDepsFor. */
const DIRECT_DIAL_RINGING_TIMEOUT_S = 2;

/**
 * What dialAttempt needs to dial through this pipeline's simulator when a test calls it directly (no dial worker):
 * the pipeline's store, a limiter at DIRECT_DIAL_CPS unless `overrides` says otherwise, a 2 s ringing timeout.
 */
export function dialDepsFor(p: TestPipeline, overrides: Partial<DialDeps> = {}): DialDeps {
  const { store } = p;
  return {
    livekit: createLiveKitClients({ url: p.sim.url, apiKey: p.sim.apiKey, apiSecret: p.sim.apiSecret }),
    store,
    limiter: new DialRateLimiter(p.redis, store.keys.dialWindow(), DIRECT_DIAL_CPS),
    backoff: new PlatformBackoff(p.redis, store.keys.platformBackoff(), store.keys.platformFailures()),
    trunkId: p.sim.outboundTrunkId,
    agentName: p.config.agentName,
    ringingTimeoutS: DIRECT_DIAL_RINGING_TIMEOUT_S,
    clock: systemClock,
    logger: silentLogger,
    ...overrides,
  };
}

/**
 * Starts the simulator, the results worker and one dial worker (unless `dialers: 0`). Answered calls need an agent in
 * the room (else the consumer hangs up after AGENT_JOIN_GRACE_MS), so by default an agent host that joins every
 * dispatch and says nothing stands in for the agent (`agent: 'stand-in'`); `agent: 'none'` registers none (a test
 * that starts its own simulated agent, or one that wants dispatches nobody takes). Redis is the run's topology
 * (TEST_REDIS_TOPOLOGY: testRedisEnv's settings in `env`, a hash-tagged prefix on a cluster) unless `env` names one
 * of its own; every connection, the test's `redis` too, comes from the production factory.
 */
export async function startTestPipeline(
  name: string,
  options: {
    network?: ScenarioInput;
    env?: Record<string, string>;
    dialers?: number;
    agent?: 'stand-in' | 'none';
    /** The dial and results workers' logger (silent unless given: a test that explains its failures from the log). */
    logger?: Logger;
  } = {},
): Promise<TestPipeline> {
  // the run's Redis (TEST_REDIS_TOPOLOGY), unless a test points the pipeline at a topology of its own (REDIS_URL,
  // REDIS_SENTINELS or REDIS_CLUSTER_NODES in `env`): then only its own settings say where Redis is
  const ownTopology = REDIS_LOCATION_SETTINGS.some((setting) => options.env?.[setting] !== undefined);
  const prefix = options.env?.QUEUE_PREFIX ?? uniquePrefix(name);
  const sim = await startLiveKitSim({ network: options.network });
  const env: Record<string, string> = {
    ...(ownTopology ? {} : testRedisEnv()),
    QUEUE_PREFIX: prefix,
    LIVEKIT_URL: sim.url,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    DIAL_CPS: '50',
    DIAL_CONCURRENCY: '10',
    DIAL_MAX_ATTEMPTS: '3',
    DIAL_RINGING_TIMEOUT_S: '1',
    DIAL_RETRY_DELAY_S: '0.2',
    LOG_LEVEL: 'silent',
    // TEST_CALL_SHARDS runs a pipeline with its campaigns spread over call shards (README "Call shards")
    ...(process.env.TEST_CALL_SHARDS ? { CALL_SHARDS: process.env.TEST_CALL_SHARDS } : {}),
    ...options.env,
  };
  const config = loadConfig(env);
  const standInAgent =
    (options.agent ?? 'stand-in') === 'stand-in'
      ? await startStandInAgent({ url: sim.url, apiKey: sim.apiKey, apiSecret: sim.apiSecret, agentName: config.agentName })
      : undefined;
  // the test's own connection comes from the production factory too: a Cluster client, or the sentinels' primary
  const redis = createWorkerConnection(config.redis, {}, { name: `test-${name}`, logger: silentLogger });
  const store = new CallStore(redis, prefix, systemClock);
  const producer = new CallProducer({ connection: redis, prefix, maxAttempts: config.dial.maxAttempts });
  const calls = callsView(new CallQueues(redis, prefix));
  const workerLogger = options.logger ?? silentLogger;
  const results = await startResultsWorker({ config, logger: workerLogger });
  const dialers: DialWorkerHandle[] = [];
  const startDialer = async () => {
    const dialer = await startDialWorker({ config, logger: workerLogger });
    dialers.push(dialer);
    return dialer;
  };
  for (let i = 0; i < (options.dialers ?? 1); i++) await startDialer();

  return {
    sim,
    config,
    redis,
    store,
    producer,
    calls,
    results,
    dialers,
    env,
    standInAgent,
    startDialer,
    enqueue: async (request) => (await producer.enqueueCall(request)).callId,
    waitForOutcome: (campaignId, callId, timeoutMs = 15_000) =>
      waitFor(
        async () => {
          const record = await store.get(campaignId, callId);
          return record?.state === 'terminal' ? record : undefined;
        },
        timeoutMs,
        `terminal outcome of ${callId}`,
      ),
    close: async () => {
      await Promise.all(dialers.map((d) => d.close(true)));
      await results.close();
      await producer.close();
      await calls.close();
      await standInAgent?.close();
      await sim.close();
      // every call shard's keys (CALL_SHARDS; QUEUE_PREFIX's own alone by default)
      for (const shardPrefix of config.callShards.prefixes) await deleteKeysWithPrefix(redis, shardPrefix);
      await redis.quit();
    },
  };
}
