/**
 * The agent's outcome survives Redis being away when the call ends (src/agent/outcomeSpool.ts): the simulated agent
 * runs real calls against the simulator and reports to a test-owned redis-server that the test takes away right after
 * the answer (so the report meets the outage) for 6 s, or until the agent has shut down, then brings back on the same
 * port.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OutcomeSpool, replaySpool, spoolDirFor } from '../../src/agent/outcomeSpool.js';
import type { CallResult } from '../../src/core/outcomes.js';
import { parseProfiles } from '../../src/agent/profiles.js';
import { startSimulatedAgent, type SimulatedAgent } from '../../src/harness/simulatedAgent.js';
import type { LiveKitClients } from '../../src/core/livekitClients.js';
import { SECOND, sleep } from '../../src/core/time.js';
import { startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';
import { ResultsReader, dialLikeConsumer, nextNumber, simClients } from './helpers.js';
import { startRestartableRedis, type RestartableRedis } from './restartableRedis.js';

const AGENT_NAME = 'durable-outcome-agent';
/** How long Redis is away: twice what the reporter used to hold out (3 tries over ~3 s). */
const OUTAGE_MS = 6 * SECOND;
const TEST_TIMEOUT_MS = 40 * SECOND;

const profiles = parseProfiles({
  survey: {
    instructions: 'Survey.',
    survey: { questions: ['How satisfied are you?', 'Would you recommend us?'] },
  },
});
const SURVEY_CALLEE = { kind: 'human' as const, lines: ['Hello?'], surveyAnswers: { '1': 'Very satisfied', '2': 'Yes, definitely' } };

let redis: RestartableRedis;
let sim: LiveKitSim;
let clients: LiveKitClients;
let spoolBase: string;
const logLines: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRestartableRedis();
  sim = await startLiveKitSim();
  clients = simClients(sim);
  spoolBase = await mkdtemp(join(tmpdir(), 'dialer-test-spool-'));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await sim.close();
  await redis.close();
  await rm(spoolBase, { recursive: true, force: true });
});

function startAgent(prefix: string): Promise<SimulatedAgent> {
  return startSimulatedAgent({
    sim,
    redisUrl: redis.url,
    queuePrefix: prefix,
    agentName: AGENT_NAME,
    profiles,
    outcomeSpoolDir: spoolBase,
    logger: pino({ level: 'info' }, { write: (line: string) => logLines.push(line) }),
    timing: { limits: { maxCallDurationMs: 10_000, silenceTimeoutMs: 300 } },
  });
}

/** Takes Redis away as soon as `room`'s callee answers. Resolves once it is stopped. */
function stopOnAnswer(room: string): Promise<void> {
  return waitForEvent(sim.events, 'call_answered', (e) => e.room === room, 10 * SECOND).then(() => redis.stop());
}

/** Takes Redis away as soon as `room`'s callee answers; brings it back OUTAGE_MS later. Resolves when it is back. */
function outageOnAnswer(room: string): Promise<void> {
  return stopOnAnswer(room).then(async () => {
    await sleep(OUTAGE_MS);
    await redis.start();
  });
}

function logged(callId: string, msg: string): boolean {
  return logLines.some((line) => line.includes(`"callId":"${callId}"`) && line.includes(msg));
}

describe('an outcome reported while Redis is away', () => {
  it('arrives once Redis is back, with its transcript and survey answers (the agent keeps sending it)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = uniquePrefix('durable-live');
    const agent = await startAgent(prefix);
    cleanups.push(() => agent.close());
    const results = new ResultsReader(redis.url, prefix);
    cleanups.push(() => results.close());
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: SURVEY_CALLEE });

    const outage = outageOnAnswer('call-durable-live-1');
    const call = await dialLikeConsumer(sim, clients, { callId: 'durable-live', phoneNumber: number, agentName: AGENT_NAME, agentProfile: 'survey' });
    expect(call.answered).toBe(true);
    await agent.idle();
    // The call ended and was reported while Redis was away.
    expect(logged('durable-live', 'could not send the outcome')).toBe(true);
    await outage;

    const result = await results.waitFor('durable-live', 20 * SECOND);
    expect(result.outcome).toBe('answered');
    expect(result.surveyAnswers).toEqual([
      { question: 'How satisfied are you?', answer: 'Very satisfied' },
      { question: 'Would you recommend us?', answer: 'Yes, definitely' },
    ]);
    expect(result.transcript?.some((line) => line.role === 'callee' && line.text === 'Very satisfied')).toBe(true);
    await waitFor(async () => ((await readdir(spoolDirFor(spoolBase, prefix))).length === 0 ? true : undefined), 5 * SECOND, 'spool emptied');
  });

  it('an agent that shuts down before Redis is back leaves the outcome in the spool, says so, and the next one replays it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const prefix = uniquePrefix('durable-shutdown');
    const agent = await startAgent(prefix);
    const number = nextNumber();
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: SURVEY_CALLEE });

    const stopped = stopOnAnswer('call-durable-shutdown-1');
    await dialLikeConsumer(sim, clients, { callId: 'durable-shutdown', phoneNumber: number, agentName: AGENT_NAME, agentProfile: 'survey' });
    await agent.idle();
    await agent.close();
    expect(logged('durable-shutdown', 'left in the spool')).toBe(true);
    expect(await readdir(spoolDirFor(spoolBase, prefix))).toHaveLength(1);
    // Redis comes back only now, after the agent that reported the outcome is gone
    await stopped;
    await redis.start();

    // The next agent process on this host (the worker's main process does the same) replays the spool.
    const next = await startAgent(prefix);
    cleanups.push(() => next.close());
    const results = new ResultsReader(redis.url, prefix);
    cleanups.push(() => results.close());
    const result = await results.waitFor('durable-shutdown', 20 * SECOND);
    expect(result.outcome).toBe('answered');
    expect(result.surveyAnswers).toHaveLength(2);
    expect(result.transcript?.length).toBeGreaterThan(2);
    await waitFor(async () => ((await readdir(spoolDirFor(spoolBase, prefix))).length === 0 ? true : undefined), 5 * SECOND, 'spool emptied');
  });
});

describe('replaying the spool', () => {
  const result = (callId: string): CallResult => ({
    callId,
    campaignId: 'spool-tests',
    outcome: 'answered',
    reason: 'agent ended the call',
    reportedBy: 'agent',
    attempt: 1,
    endedAt: Date.now(),
    transcript: [{ role: 'callee', text: 'Hello?' }],
  });

  it('sends what is due, drops what is past its outcome deadline and unreadable files (logging each), and stops at the first failure', async () => {
    const spool = new OutcomeSpool(join(spoolBase, 'replay-unit'));
    const now = Date.now();
    await spool.write(result('due-1'), now + 60 * SECOND);
    await spool.write(result('expired-1'), now - 1);
    await writeFile(join(spool.dir, 'garbage.json'), '{not json');
    const sent: string[] = [];
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const pass = await replaySpool({ spool, sender: { report: async (r) => void sent.push(r.callId) }, logger, minAgeMs: 0 });
    expect(pass).toEqual({ delivered: 1, expired: 1, failed: 0 });
    expect(sent).toEqual(['due-1']);
    expect(await readdir(spool.dir)).toEqual([]);
    expect(lines.some((l) => l.includes('expired-1') && l.includes('outcome deadline passed'))).toBe(true);
    expect(lines.some((l) => l.includes('unreadable outcome spool file removed'))).toBe(true);

    await spool.write(result('due-2'), now + 60 * SECOND);
    await spool.write(result('due-3'), now + 60 * SECOND);
    let tries = 0;
    const failing = await replaySpool({
      spool,
      sender: {
        report: async () => {
          tries += 1;
          throw new Error('Connection is closed.');
        },
      },
      logger,
      minAgeMs: 0,
    });
    expect(failing).toEqual({ delivered: 0, expired: 0, failed: 1 });
    expect(tries).toBe(1);
    expect(await readdir(spool.dir)).toHaveLength(2);
    // Files younger than the minimum age are the writer's own business.
    expect(await replaySpool({ spool, sender: { report: async () => undefined }, logger, minAgeMs: 60 * SECOND })).toEqual({ delivered: 0, expired: 0, failed: 0 });
  });
});
