/**
 * The chaos test (`npm run test:chaos`): a campaign of a few hundred scripted numbers through real `dialer consumer`
 * processes, the LiveKit simulator (behind a proxy that is LiveKit's API door) and the simulated agent, each in a
 * process of its own, while consumers are SIGKILLed during ringing (one at a
 * time, and all at once so calls decline and ring out with no consumer alive), Redis (its own, AOF on) is frozen
 * while agents report and later restarted, and LiveKit's API is unreachable for 20 s. The figures come from the
 * simulator's log, what a carrier would see, and must read 1 / 0 / 0 / 0 with no rolling second over DIAL_CPS.
 *
 * Prints one line (also in test/chaos/out/last-run.txt) and, when something broke, every violation by kind with the
 * number's dials as the carrier saw them (all of them in test/chaos/out/last-run-details.txt). CHAOS_SEED picks the
 * campaign (default fixed), CHAOS_CALLS its size. CHAOS_REDIS_TOPOLOGY picks the Redis (test/chaos/chaosTopology.ts):
 * `single` (default, as above), `sentinel` (primary, replica, three sentinels; the restart is a failover:
 * `npm run test:chaos:sentinel`) or `cluster` (three masters; the slot's master is frozen and restarted:
 * `npm run test:chaos:cluster`); their files go to test/chaos/out/<topology>/. CHAOS_CONSUMER_LOG_LEVEL=debug makes
 * the consumers log when each dial request was written (to tell a late dial from a late stamp at the proxy).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RedisClient } from '../../src/core/redisClient.js';
import { closeConnection } from '../../src/core/redisConnection.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueCalls } from '../../src/index.js';
import { CallStore } from '../../src/core/callStore.js';
import { campaignCallsQueue } from '../../src/core/callQueues.js';
import { configureCallShards } from '../../src/core/callShards.js';
import { SECOND, sleep, systemClock } from '../../src/core/time.js';
import { chaosCampaign } from './chaosScenario.js';
import { AgentHost, ApiProxyProcess, ChildRegistry, ConsumerProcess, SimHost, freePort } from './chaosProcesses.js';
import { chaosTopologyKind, startChaosTopology, type ChaosTopology } from './chaosTopology.js';
import {
  analyseChaosRun,
  formatChaosLine,
  formatViolations,
  numberHistory,
  type ChaosActions,
  type ChaosCall,
  type HostStatus,
  type RecordView,
} from './chaosReport.js';

const CALLS = Number(process.env.CHAOS_CALLS ?? 210);
/**
 * CALL_SHARDS of every process (CHAOS_CALL_SHARDS, default 1). `npm run test:chaos:cluster` runs 3: the campaign's
 * records and dial jobs then live in its shard, on another master than the global keys, and every dial is claimed in
 * two steps (README "Call shards").
 */
const CALL_SHARDS = Number(process.env.CHAOS_CALL_SHARDS ?? 1);
const SEED = Number(process.env.CHAOS_SEED ?? 20261130);
const CONSUMERS = 3;
/** Low enough that the first pass alone takes ~40 s, so every chaos step meets calls in flight. */
const DIAL_CPS = 5;
const CAMPAIGN = 'chaos';
const AGENT_NAME = 'chaos-agent';
const TOPOLOGY = chaosTopologyKind();
/** The consumers' LOG_LEVEL (CHAOS_CONSUMER_LOG_LEVEL, default info; `debug` logs when each dial request was written). */
const CONSUMER_LOG_LEVEL = process.env.CHAOS_CONSUMER_LOG_LEVEL || 'info';

/** The dialer's settings in every consumer: short ringing, quick retries and locks, so the chaos bites in minutes. */
const DIALER_SETTINGS: Record<string, string> = {
  DIAL_CPS: String(DIAL_CPS),
  DIAL_CONCURRENCY: '10',
  DIAL_MAX_ATTEMPTS: '3',
  DIAL_RINGING_TIMEOUT_S: '4',
  DIAL_RETRY_DELAY_S: '1',
  DIAL_RETRY_DELAY_NO_ANSWER_S: '2',
  DIAL_LOCK_DURATION_MS: '3000',
  // An agent report lost for good ends the call as `failed` (a wrong outcome) within the run, not after 15 minutes.
  CALL_OUTCOME_TIMEOUT_S: '60',
  LOG_LEVEL: CONSUMER_LOG_LEVEL,
  // Set empty so a developer's .env cannot add gates or hooks to the run (empty counts as unset).
  DIAL_CALL_WINDOW: '',
  DIAL_CALL_DAYS: '',
  PREDIAL_CHECK_URL: '',
  RESULTS_WEBHOOK_URL: '',
  METRICS_PORT: '',
};

/** Pause before the first step (consumers pick up work) and between steps (the dialer reacts to the last one). */
const FIRST_STEP_AFTER_MS = 3 * SECOND;
const STEP_GAP_MS = 3 * SECOND;
const KILL_SETTLE_MS = 4 * SECOND;
/** A step's moment: this many calls ringing (kills), or agents in conversation (Redis freeze), if it comes. */
const RINGING_WANTED = 3;
const CONVERSATIONS_WANTED = 3;
/** Later steps meet a smaller campaign tail: they settle for fewer. */
const LATE_STEP_WANTED = 2;
/** How long no consumer is alive after the kill-all: calls ringing then decline or ring out unobserved. */
const ALL_DEAD_MS = 6 * SECOND;
const REDIS_BLOCK_MS = 6 * SECOND;
const REDIS_DOWN_MS = 3 * SECOND;
const LIVEKIT_OUTAGE_MS = 20 * SECOND;
/**
 * Longest wait for the moment a chaos step wants (calls ringing, agents talking); the step happens anyway after, and
 * a step that met no live call fails the run (on a machine too slow for the campaign, say).
 */
const MOMENT_WAIT_MS = 30 * SECOND;
/**
 * The campaign should end within this from the enqueue (and at least AFTER_CHAOS_BUDGET_MS after the last chaos
 * step); while calls still end, the wait goes on, up to AFTER_CHAOS_CAP_MS after the last step.
 */
const CAMPAIGN_BUDGET_MS = 150 * SECOND;
const AFTER_CHAOS_BUDGET_MS = 60 * SECOND;
const AFTER_CHAOS_CAP_MS = 120 * SECOND;
/** "Still ending": a call ended within this long. */
const PROGRESS_WINDOW_MS = 20 * SECOND;
/** After the last outcome, dials still arriving (late re-rings) are waited for this long without any. */
const QUIET_MS = 4 * SECOND;
const QUIET_BUDGET_MS = 20 * SECOND;
const POLL_MS = 500;
const REDIS_COMMAND_TIMEOUT_MS = 2 * SECOND;
const VIOLATIONS_SHOWN_PER_KIND = 6;
/** Three consumers starting at once on loaded cores (see chaosProcesses' START_TIMEOUT_MS), plus the rest. */
const SETUP_TIMEOUT_MS = 240 * SECOND;
const TEARDOWN_TIMEOUT_MS = 30 * SECOND;
/** The chaos steps (each waiting at most MOMENT_WAIT_MS), the campaign's tail (AFTER_CHAOS_CAP_MS) and the report. */
const TEST_TIMEOUT_MS = 420 * SECOND;

/** The run's files: test/chaos/out/ for `single` (as before), test/chaos/out/<topology>/ for the others. */
const outDir = fileURLToPath(new URL(TOPOLOGY === 'single' ? './out/' : `./out/${TOPOLOGY}/`, import.meta.url));
const outDirShown = TOPOLOGY === 'single' ? 'test/chaos/out' : `test/chaos/out/${TOPOLOGY}`;
const registry = new ChildRegistry();
let workDir = '';
let redis: ChaosTopology | undefined;
let host: SimHost;
let proxy: ApiProxyProcess;
let consumerEnv: Record<string, string>;
let consumerSerial = 0;
const consumers: ConsumerProcess[] = [];
const campaign = chaosCampaign(CALLS, SEED);

/** The inherited environment without any dialer setting, so only this file's settings apply. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(DIAL_|LIVEKIT_|REDIS_|QUEUE_PREFIX|SIP_|AGENT_NAME|CALL_OUTCOME|RESULTS_|PREDIAL_|METRICS_|CHAOS_REDIS_)/.test(key)) continue;
    env[key] = value;
  }
  return env;
}

function startConsumer(): ConsumerProcess {
  consumerSerial += 1;
  const name = `consumer-${consumerSerial}`;
  const consumer = new ConsumerProcess(registry, name, consumerEnv, join(outDir, `${name}.log`));
  consumers.push(consumer);
  return consumer;
}

/** What the run did, with times relative to the enqueue. */
const timeline: { at: number; what: string }[] = [];
let t0 = 0;
const note = (what: string) => timeline.push({ at: Date.now(), what });

/** The BullMQ dial job's end state of every call that did not end as scripted (for the report). */
async function describeJobs(connection: RedisClient, calls: readonly ChaosCall[], records: ReadonlyMap<string, RecordView>): Promise<Map<string, string>> {
  const queue = campaignCallsQueue(connection, consumerEnv.QUEUE_PREFIX ?? '', CAMPAIGN);
  const jobs = new Map<string, string>();
  try {
    for (const call of calls) {
      const record = records.get(call.callId);
      if (record && record.state === 'terminal' && record.outcome === call.expected) continue;
      const job = await queue.getJob(call.callId);
      const description = job
        ? `${await job.getState()}, attemptsMade ${job.attemptsMade}, stalled ${job.stalledCounter}${job.failedReason ? `, "${job.failedReason}"` : ''}`
        : 'none';
      jobs.set(call.callId, description);
    }
  } finally {
    await queue.close();
  }
  return jobs;
}

/** Waits (bounded) until the sim host's status passes `wanted`; returns the last status either way. */
async function momentWhen(wanted: (s: HostStatus) => boolean): Promise<HostStatus> {
  const deadline = Date.now() + MOMENT_WAIT_MS;
  let status = await host.status();
  while (!wanted(status) && Date.now() < deadline) {
    await sleep(POLL_MS / 5);
    status = await host.status();
  }
  return status;
}

beforeAll(async () => {
  await mkdir(outDir, { recursive: true });
  workDir = await mkdtemp(join(tmpdir(), 'dialer-chaos-'));
  redis = await startChaosTopology(TOPOLOGY, registry, workDir, `chaos-${process.pid}`, { callShards: CALL_SHARDS, campaignId: CAMPAIGN });
  const { prefix } = redis;
  // this process' stores find the campaign in its shard, as the consumers do
  configureCallShards(prefix, CALL_SHARDS);
  const scenarioPath = join(workDir, 'scenario.json');
  await writeFile(scenarioPath, JSON.stringify(campaign.scenario));
  host = await SimHost.start(registry, { CHAOS_SCENARIO: scenarioPath }, join(outDir, 'sim-host.log'));
  proxy = await ApiProxyProcess.start(registry, await freePort(), host.ready.port, join(outDir, 'api-proxy.log'));
  const agent = await AgentHost.start(
    registry,
    {
      CHAOS_API_URL: proxy.url,
      CHAOS_SIM_URL: `http://127.0.0.1:${host.ready.port}`,
      LIVEKIT_API_KEY: host.ready.apiKey,
      LIVEKIT_API_SECRET: host.ready.apiSecret,
      SIP_OUTBOUND_TRUNK_ID: host.ready.outboundTrunkId,
      // where Redis is (empty: unset, so the test process's own environment cannot add a Sentinel or a cluster)
      REDIS_SENTINELS: '',
      REDIS_CLUSTER_NODES: '',
      ...redis.env,
      QUEUE_PREFIX: prefix,
      CALL_SHARDS: String(CALL_SHARDS),
      AGENT_NAME,
      CALL_OUTCOME_TIMEOUT_S: DIALER_SETTINGS.CALL_OUTCOME_TIMEOUT_S as string,
      CHAOS_SPOOL_DIR: join(workDir, 'agent-spool'),
      LOG_LEVEL: 'warn',
    },
    join(outDir, 'agent-host.log'),
  );
  host.onEvent((message) => agent.relay(message));
  consumerEnv = {
    ...cleanEnv(),
    ...DIALER_SETTINGS,
    ...redis.env,
    QUEUE_PREFIX: prefix,
    CALL_SHARDS: String(CALL_SHARDS),
    LIVEKIT_URL: proxy.url,
    LIVEKIT_API_KEY: host.ready.apiKey,
    LIVEKIT_API_SECRET: host.ready.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: host.ready.outboundTrunkId,
    AGENT_NAME,
  };
  await Promise.all(Array.from({ length: CONSUMERS }, () => startConsumer().ready()));
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await registry.killAll();
  await redis?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
}, TEARDOWN_TIMEOUT_MS);

describe('chaos: a campaign through consumer SIGKILLs, a Redis freeze and restart, and a LiveKit outage', () => {
  it('never dials an attempt twice, never rings a number after its final answer, and ends every call with its scripted outcome', async () => {
    if (!redis) throw new Error('Redis did not start');
    const topology = redis;
    const started = Date.now();
    const { numbers } = campaign;
    const actions: ChaosActions = { consumerKills: 0, redisRestarts: 0, livekitOutageS: 0, redisBlockS: 0, topology: topology.kind, callShards: CALL_SHARDS };

    t0 = Date.now();
    const producer = await topology.producer();
    const summary = await enqueueCalls(
      numbers.map((n) => ({ phoneNumber: n.phoneNumber, campaignId: CAMPAIGN, metadata: { first_name: 'Pat', company: 'Acme Dental' } })),
      {
        ...(producer ? { connection: producer } : { redisUrl: topology.url }),
        prefix: consumerEnv.QUEUE_PREFIX,
        maxAttempts: Number(DIALER_SETTINGS.DIAL_MAX_ATTEMPTS),
      },
    ).finally(() => (producer ? closeConnection(producer) : undefined));
    expect(summary.rejected).toEqual([]);
    const calls: ChaosCall[] = summary.enqueued.map((e) => ({ ...(numbers[e.index] as (typeof numbers)[number]), callId: e.callId }));
    note(`enqueued ${calls.length} calls`);

    /** When each SIGKILL was sent: a 404 answered just before one may have died with its consumer. */
    const killTimes: number[] = [];
    /** Each step's moment: did it meet live calls (ringing, or agents talking)? A step that met none proves nothing. */
    const missed: string[] = [];
    const killOne = async (which: string) => {
      const status = await momentWhen((s) => s.ringing >= RINGING_WANTED);
      const victim = consumers.find((c) => c.alive && c.isReady);
      if (!victim) {
        missed.push(`${which}: no running consumer to kill`);
        return;
      }
      killTimes.push(Date.now());
      await victim.kill();
      actions.consumerKills += 1;
      if (status.ringing === 0) missed.push(`${which}: no call ringing`);
      note(`SIGKILL ${victim.name} (${which}; ${status.ringing} calls ringing, ${status.dialing} dialing); replacement starting`);
      startConsumer();
    };

    // 1–2: one consumer at a time, while calls ring; a replacement starts at once.
    await sleep(FIRST_STEP_AFTER_MS);
    await killOne('first kill');
    await sleep(KILL_SETTLE_MS);
    await killOne('second kill');

    // 3: Redis frozen while agents are talking and about to report.
    await sleep(STEP_GAP_MS);
    {
      const status = await momentWhen((s) => s.inConversation >= CONVERSATIONS_WANTED);
      if (status.inConversation === 0) missed.push('Redis freeze: no call in conversation');
      note(`SIGSTOP ${topology.frozenName} for ${REDIS_BLOCK_MS / SECOND} s (${status.inConversation} calls in conversation)`);
      const frozen = await topology.freeze(REDIS_BLOCK_MS);
      actions.redisBlockS = REDIS_BLOCK_MS / SECOND;
      note(`SIGCONT ${frozen}`);
    }

    // 4: every consumer killed while calls ring; for a while none is alive, then three new ones.
    await sleep(STEP_GAP_MS);
    {
      // the replacements must be running first, or the kill-all would meet processes still starting
      await Promise.all(consumers.filter((c) => c.alive).map((c) => c.ready().catch(() => undefined)));
      const status = await momentWhen((s) => s.ringing >= RINGING_WANTED);
      const alive = consumers.filter((c) => c.alive);
      const running = alive.filter((c) => c.isReady).length;
      killTimes.push(Date.now());
      await Promise.all(alive.map((c) => c.kill()));
      actions.consumerKills += running;
      if (status.ringing === 0) missed.push('kill-all: no call ringing');
      note(
        `SIGKILL all ${alive.length} consumers (${running} running, ${alive.length - running} still starting; ${status.ringing} calls ringing); none alive for ${ALL_DEAD_MS / SECOND} s`,
      );
      await sleep(ALL_DEAD_MS);
      await Promise.all(Array.from({ length: CONSUMERS }, () => startConsumer().ready()));
      note(`${CONSUMERS} new consumers running`);
    }

    // 5: Redis restarted (SIGTERM, down a few seconds, same port and AOF) while agents talk; through Sentinel the
    // primary is SIGKILLed instead and the replica promoted (a failover).
    await sleep(STEP_GAP_MS);
    {
      const status = await momentWhen((s) => s.inConversation >= LATE_STEP_WANTED);
      if (status.inConversation === 0) missed.push('Redis restart: no call in conversation');
      note(`${topology.restartWords} (${status.inConversation} calls in conversation)${topology.kind === 'sentinel' ? '' : `, down ${REDIS_DOWN_MS / SECOND} s`}`);
      const restart = await topology.restart(REDIS_DOWN_MS);
      actions.redisRestarts += 1;
      if (restart.failoverMs !== undefined) actions.failoverS = restart.failoverMs / SECOND;
      if (restart.backMs !== undefined) actions.nodeBackS = restart.backMs / SECOND;
      note(restart.what);
    }

    // 6: LiveKit's API unreachable for 20 s while calls ring.
    await sleep(STEP_GAP_MS);
    {
      const status = await momentWhen((s) => s.ringing >= LATE_STEP_WANTED);
      if (status.ringing === 0) missed.push('LiveKit outage: no call ringing');
      note(`LiveKit API unreachable for ${LIVEKIT_OUTAGE_MS / SECOND} s (${status.ringing} calls ringing)`);
      await proxy.outage(LIVEKIT_OUTAGE_MS);
      actions.livekitOutageS = LIVEKIT_OUTAGE_MS / SECOND;
      note('LiveKit API reachable again');
    }
    const chaosEnded = Date.now();

    // Every call's record terminal (or the budget spent), then no dial for a few seconds (late re-rings count too).
    const reader = await topology.connect({ maxRetriesPerRequest: 1, commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
    reader.on('error', () => undefined); // a failed poll is retried below; the final read must succeed
    const store = new CallStore(reader, consumerEnv.QUEUE_PREFIX as string, systemClock);
    try {
      let ended = 0;
      let lastProgressAt = Date.now();
      for (;;) {
        const counters = await store.counters(CAMPAIGN).catch(() => undefined);
        if (counters && counters.terminal >= calls.length) break;
        if (counters && counters.terminal > ended) {
          ended = counters.terminal;
          lastProgressAt = Date.now();
        }
        const now = Date.now();
        const progressing = now - lastProgressAt < PROGRESS_WINDOW_MS;
        const budgetSpent = now > Math.max(t0 + CAMPAIGN_BUDGET_MS, chaosEnded + AFTER_CHAOS_BUDGET_MS);
        if ((budgetSpent && !progressing) || now > chaosEnded + AFTER_CHAOS_CAP_MS) {
          note(`campaign budget spent with ${counters ? calls.length - counters.terminal : '?'} calls not ended`);
          break;
        }
        await sleep(POLL_MS);
      }
      note('every call ended (or budget spent); waiting for dials to stop');
      const quietDeadline = Date.now() + QUIET_BUDGET_MS;
      for (;;) {
        const status = await host.status();
        const quiet = status.dialing === 0 && (status.lastDialAt === undefined || Date.now() - status.lastDialAt >= QUIET_MS);
        if (quiet || Date.now() > quietDeadline) break;
        await sleep(POLL_MS);
      }

      const records = new Map<string, RecordView>(
        (await store.list(CAMPAIGN)).map((r) => [r.callId, { callId: r.callId, state: r.state, outcome: r.outcome, attempts: r.attempts, reason: r.reason }]),
      );
      const jobs = await describeJobs(reader, calls, records);
      const dump = await host.dump(join(outDir, 'sim-dump.json'));
      const { arrivals, closes, stalls: proxyStalls } = await proxy.dump(join(outDir, 'proxy-dump.json'));
      const { figures, violations, unheard } = analyseChaosRun({
        calls,
        simCalls: dump.calls,
        arrivals,
        records,
        cps: DIAL_CPS,
        closes,
        consumerKills: killTimes,
      });
      const line = formatChaosLine(figures, actions);
      const runS = Math.round((Date.now() - started) / SECOND);
      const nonJson = consumers.reduce((sum, c) => sum + c.nonJsonLines, 0);
      const chaosLog = timeline.map((t) => `  +${((t.at - t0) / SECOND).toFixed(1)}s ${t.what}`).join('\n');
      const details = [
        line,
        `Redis topology: ${topology.kind} (CHAOS_REDIS_TOPOLOGY), QUEUE_PREFIX ${consumerEnv.QUEUE_PREFIX}, ${Object.entries(topology.env).map(([k, v]) => `${k}=${v}`).join(' ')}`,
        `seed ${SEED}, ${calls.length} calls, run ${runS} s, ${arrivals.length} CreateSIPParticipant at the proxy, ${dump.calls.length} at the simulator, ${nonJson} non-JSON consumer log lines`,
        'chaos timeline (from the enqueue):',
        chaosLog,
        `sim host event-loop stalls ≥ 200 ms: ${dump.stalls.length}, longest ${Math.max(0, ...dump.stalls.map((st) => st.ms))} ms (they delay the simulator's timestamps, not the proxy's)`,
        missed.length > 0 ? `chaos steps that met no live call (the run proves less): ${missed.join('; ')}` : 'every chaos step met live calls',
        formatViolations(violations, { simCalls: dump.calls, events: dump.events, proxyStalls, arrivals, closes, consumerKills: killTimes, records, jobs, t0 }),
        `404 numbers whose 404 never reached a dialer that lived to record it (ended failed, not dialed again): ${unheard.length}`,
        ...unheard.flatMap((call) => numberHistory(call.phoneNumber, call, { simCalls: dump.calls, events: dump.events, arrivals, closes, consumerKills: killTimes, records, t0 })),
      ].join('\n');
      await writeFile(join(outDir, 'last-run.txt'), `${line}\n`);
      await writeFile(join(outDir, 'last-run-details.txt'), `${details}\n`);
      console.log(`${line}\n(run ${runS} s; seed ${SEED}; chaos timeline:\n${chaosLog})`);

      const shown = formatViolations(violations, { simCalls: dump.calls, events: dump.events, proxyStalls, arrivals, closes, consumerKills: killTimes, records, jobs, t0, limitPerKind: VIOLATIONS_SHOWN_PER_KIND });
      expect(
        {
          maxDialsPerAttempt: figures.maxDialsPerAttempt,
          reRingsAfterFinal: figures.reRingsAfterFinal,
          outcomesLost: figures.outcomesLost,
          outcomesWrong: figures.outcomesWrong,
          startsWithinCps: figures.maxStartsPerRollingSecond <= DIAL_CPS,
          chaosStepsWithoutLiveCalls: missed,
        },
        `${line}\n${shown}\n(all violations: ${outDirShown}/last-run-details.txt)`,
      ).toEqual({ maxDialsPerAttempt: 1, reRingsAfterFinal: 0, outcomesLost: 0, outcomesWrong: 0, startsWithinCps: true, chaosStepsWithoutLiveCalls: [] });
    } finally {
      reader.disconnect();
    }
  }, TEST_TIMEOUT_MS);
});
