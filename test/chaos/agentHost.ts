/**
 * The chaos test's agent: the simulated agent (src/harness/simulatedAgent.ts, the real agent code with a scripted model,
 * as `npm run demo` runs it) in a process of its own. It hears the simulator's events as the test relays them from the
 * sim host over IPC (`{event, payload}`), reaches LiveKit's API through the API proxy (so a LiveKit outage is its
 * outage too), and reports outcomes to the chaos Redis, spooling them on disk while Redis is away.
 *
 *   node --import tsx test/chaos/agentHost.ts   (spawned with an IPC channel)
 *
 * Environment: CHAOS_API_URL (the proxy), LIVEKIT_API_KEY, LIVEKIT_API_SECRET, SIP_OUTBOUND_TRUNK_ID, REDIS_URL (and
 * REDIS_SENTINELS / REDIS_SENTINEL_NAME or REDIS_CLUSTER_NODES, as the dialer reads them), QUEUE_PREFIX, AGENT_NAME, CALL_OUTCOME_TIMEOUT_S (as the consumers'), CHAOS_SPOOL_DIR (the outcome spool, inside the
 * test's temp dir), LOG_LEVEL (agent logs, stderr). Prints `ready` once it listens.
 */
import type { EventEmitter } from 'node:events';
import { z } from 'zod';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { SECOND } from '../../src/core/time.js';
import { startSimulatedAgent } from '../../src/harness/simulatedAgent.js';
import { createSimEvents } from '../../src/sim/events.js';
import { relayedEventSchema } from './relayedEvents.js';

const EXIT_FAILURE = 1;

async function main(): Promise<void> {
  const env = z
    .object({
      CHAOS_API_URL: z.string().url(),
      /** The simulator itself, for the agent's worker socket (the API proxy relays no WebSocket). */
      CHAOS_SIM_URL: z.string().url(),
      LIVEKIT_API_KEY: z.string().min(1),
      LIVEKIT_API_SECRET: z.string().min(1),
      SIP_OUTBOUND_TRUNK_ID: z.string().min(1),
      REDIS_URL: z.string().url(),
      QUEUE_PREFIX: z.string().min(1),
      AGENT_NAME: z.string().min(1),
      CALL_OUTCOME_TIMEOUT_S: z.coerce.number().positive(),
      CHAOS_SPOOL_DIR: z.string().min(1),
      LOG_LEVEL: z.string().default('warn'),
    })
    .parse(process.env);
  const logger = createLogger(env.LOG_LEVEL, 'chaos-agent-host');
  // Sentinel or Cluster when the test gives them: the dialer's own reading of the Redis settings
  const { redis } = loadConfig({
    REDIS_URL: env.REDIS_URL,
    REDIS_SENTINELS: process.env.REDIS_SENTINELS,
    REDIS_SENTINEL_NAME: process.env.REDIS_SENTINEL_NAME,
    REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES,
    QUEUE_PREFIX: env.QUEUE_PREFIX,
    // the agent's records are found in their campaign's call shard, as the consumers' are
    CALL_SHARDS: process.env.CALL_SHARDS,
  });
  const events = createSimEvents();
  const agent = await startSimulatedAgent({
    sim: { url: env.CHAOS_API_URL, agentUrl: env.CHAOS_SIM_URL, apiKey: env.LIVEKIT_API_KEY, apiSecret: env.LIVEKIT_API_SECRET, events, outboundTrunkId: env.SIP_OUTBOUND_TRUNK_ID },
    redisUrl: env.REDIS_URL,
    redis,
    queuePrefix: env.QUEUE_PREFIX,
    agentName: env.AGENT_NAME,
    logger,
    outcomeSpoolDir: env.CHAOS_SPOOL_DIR,
    outcomeTimeoutMs: env.CALL_OUTCOME_TIMEOUT_S * SECOND,
  });
  // Emit through the untyped view: the payload is the simulator's own, relayed as JSON.
  const emitter: EventEmitter = events;
  process.on('message', (message: unknown) => {
    const relayed = relayedEventSchema.safeParse(message);
    if (!relayed.success) {
      logger.error({ issues: relayed.error.issues }, 'malformed event relayed by the chaos test');
      return;
    }
    emitter.emit(relayed.data.event, relayed.data.payload);
  });
  process.on('disconnect', () => {
    void agent.close().then(() => process.exit(0));
  });
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos agent host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
