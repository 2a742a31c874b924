import { randomUUID } from 'node:crypto';
import { SingleBar, Presets } from 'cli-progress';
import { CallStore } from '../core/callStore.js';
import type { CallRecord } from '../core/callStore.js';
import { loadConfig, requireLiveKit, type DialerConfig } from '../core/config.js';
import { createLiveKitClients } from '../core/livekitClients.js';
import { createLogger, type Logger } from '../core/logger.js';
import { findOrStartRedis } from '../core/localRedis.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../core/redisConnection.js';
import { SECOND, sleep, systemClock } from '../core/time.js';
import { startDialWorker } from '../consumer/dialWorker.js';
import { startSimulatedAgent } from '../harness/simulatedAgent.js';
import { CallProducer } from '../producer/enqueueCalls.js';
import { campaignReport, formatCampaignReport, type CampaignReport } from '../results/campaignReport.js';
import { startResultsWorker } from '../results/resultsWorker.js';
import { startLiveKitSim } from '../sim/index.js';
import { DEMO_INBOUND_CALLER, DEMO_SUPPORT_LINE, placeDemoInboundCall } from './demoInbound.js';
import { DEMO_CAMPAIGN_PREFIX, DEMO_CALLS, DEMO_NETWORK, DEMO_QUEUE_PREFIX, demoRequests } from './demoCampaign.js';

/** The demo gives up (and exits non-zero) if the campaign has not finished by then. */
export const DEMO_TIMEOUT_MS = 120 * SECOND;
const PROGRESS_POLL_MS = 250;
/** The inbound call after the campaign: one short conversation and a transfer. */
const DEMO_INBOUND_TIMEOUT_MS = 30 * SECOND;

/** Settings the demo runs with: fast retries and short ringing so every outcome shows up within seconds. */
const DEMO_SETTINGS = {
  DIAL_CPS: '5',
  DIAL_CONCURRENCY: '10',
  DIAL_MAX_ATTEMPTS: '3',
  DIAL_RINGING_TIMEOUT_S: '2',
  DIAL_RETRY_DELAY_S: '1',
};

export interface DemoOptions {
  out?: NodeJS.WritableStream;
  /** Show a progress bar (default: when stdout is a terminal). */
  progressBar?: boolean;
  /** Where its keys and queues live (default: QUEUE_PREFIX when set, else DEMO_QUEUE_PREFIX, away from real jobs). */
  queuePrefix?: string;
}

/**
 * Runs the whole pipeline on embedded defaults: Redis (REDIS_URL, 127.0.0.1:6379, or a redis-server it starts),
 * the LiveKit simulator, the dial and results workers and the simulated agent; enqueues a mixed campaign, shows
 * progress and prints the campaign report. Resolves with the report; everything it started is stopped.
 */
export async function runDemo(options: DemoOptions = {}): Promise<CampaignReport> {
  const out = options.out ?? process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  const logger: Logger = createLogger(process.env.LOG_LEVEL ?? 'error');
  const cleanups: { name: string; run: () => Promise<void> }[] = [];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) {
      await step.run().catch((err: unknown) => logger.error({ err, step: step.name }, 'demo cleanup step failed'));
    }
  };

  try {
    const redis = await findOrStartRedis();
    cleanups.push({ name: 'redis', run: redis.stop });
    say(`Redis: ${redis.url} (${redis.source})`);

    const sim = await startLiveKitSim({ network: DEMO_NETWORK });
    cleanups.push({ name: 'simulator', run: () => sim.close() });
    say(`LiveKit simulator: ${sim.url} (trunk ${sim.outboundTrunkId})`);

    const config: DialerConfig = loadConfig({
      ...DEMO_SETTINGS,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
      AGENT_NAME: process.env.AGENT_NAME ?? 'telephony-agent',
      REDIS_URL: redis.url,
      QUEUE_PREFIX: options.queuePrefix ?? (process.env.QUEUE_PREFIX || DEMO_QUEUE_PREFIX),
      LIVEKIT_URL: sim.url,
      LIVEKIT_API_KEY: sim.apiKey,
      LIVEKIT_API_SECRET: sim.apiSecret,
      SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    });

    const connection = createProducerConnection(config.redis);
    cleanups.push({ name: 'redis connection', run: () => closeConnection(connection) });
    await waitUntilReady(connection);

    const agent = await startSimulatedAgent({
      sim,
      redisUrl: config.redisUrl,
      queuePrefix: config.queuePrefix,
      agentName: config.agentName,
      logger,
    });
    cleanups.push({ name: 'simulated agent', run: () => agent.close() });
    const results = await startResultsWorker({ config, logger });
    cleanups.push({ name: 'results worker', run: () => results.close() });
    const dialer = await startDialWorker({ config, logger });
    cleanups.push({ name: 'dial worker', run: () => dialer.close() });

    const campaignId = `${DEMO_CAMPAIGN_PREFIX}-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}-${randomUUID().slice(0, 4)}`;
    const producer = new CallProducer({ connection, prefix: config.queuePrefix, maxAttempts: config.dial.maxAttempts });
    cleanups.push({ name: 'producer', run: () => producer.close() });
    const summary = await producer.enqueueCalls(demoRequests(campaignId));
    say(`Campaign ${campaignId}: ${summary.enqueued.length} calls enqueued at DIAL_CPS=${config.dial.cps}`);
    for (const rejected of summary.rejected) {
      say(`  rejected ${DEMO_CALLS[rejected.index]?.label ?? `call ${rejected.index}`}: ${rejected.reason}`);
    }

    const store = new CallStore(connection, config.queuePrefix, systemClock);
    await waitForCampaign(store, campaignId, summary.enqueued.length, options.progressBar ?? Boolean(process.stdout.isTTY), say);
    await agent.idle();

    const records = await store.list(campaignId);
    const report = campaignReport(campaignId, await store.counters(campaignId), records);
    say('');
    say(formatCampaignReport(report, records));
    say('');
    say(`Query it again with: QUEUE_PREFIX=${config.queuePrefix} REDIS_URL=${redis.source === 'redis-server' ? '<stopped>' : redis.url} npm run --silent dialer -- report --campaign ${campaignId}`);

    const inbound = await placeDemoInboundCall({
      sim,
      sip: createLiveKitClients(requireLiveKit(config)).sip,
      agentName: config.agentName,
      store,
      deadline: Date.now() + DEMO_INBOUND_TIMEOUT_MS,
    });
    await agent.idle();
    say('');
    say(`Inbound: ${DEMO_INBOUND_CALLER} called the support line ${DEMO_SUPPORT_LINE}; dispatch rule ${inbound.ruleId} (dispatch-rule.json) put the call in room ${inbound.room}.`);
    say(`  ${formatInboundOutcome(inbound.record)}`);
    return report;
  } finally {
    await cleanup();
  }
}

async function waitForCampaign(store: CallStore, campaignId: string, total: number, bar: boolean, say: (line: string) => void): Promise<void> {
  const deadline = Date.now() + DEMO_TIMEOUT_MS;
  const progress = bar ? new SingleBar({ format: ' calls {bar} {value}/{total} ended | {pending} pending', hideCursor: true }, Presets.shades_classic) : undefined;
  progress?.start(total, 0, { pending: total });
  let lastLine = '';
  try {
    for (;;) {
      const counters = await store.counters(campaignId);
      const pending = counters.total - counters.terminal;
      progress?.update(counters.terminal, { pending });
      const line = `  ${counters.terminal}/${counters.total} calls ended, ${pending} pending`;
      if (!progress && line !== lastLine) {
        say(line);
        lastLine = line;
      }
      if (counters.total >= total && pending === 0) return;
      if (Date.now() > deadline) throw new Error(`demo campaign did not finish within ${DEMO_TIMEOUT_MS / SECOND} s (${pending} calls pending)`);
      await sleep(PROGRESS_POLL_MS);
    }
  } finally {
    progress?.stop();
  }
}

/** `answered|transferred… (reason) → target, recorded as in-<hash of the room> in campaign inbound`: the inbound call's one line. */
function formatInboundOutcome(record: CallRecord): string {
  const target = record.details?.transfer ? ` → ${record.details.transfer.target}` : '';
  return `${record.outcome ?? 'pending'} (${record.reason ?? 'no reason'})${target}, recorded as ${record.callId} in campaign ${record.campaignId}`;
}
