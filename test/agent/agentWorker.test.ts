/**
 * `dialer agent start`, the real agents-js worker in its own processes, against the simulator's `/agent` endpoint:
 * it registers under AGENT_NAME, takes only the dispatches for that name (the consumer's, a `lk dispatch create`,
 * and an inbound call through the rule `dialer setup inbound` creates), and runs src/agent's job in a job process.
 * The sim has no media server, so the job's room connection is refused: the call job must still report exactly one
 * outcome (failed, naming why), delete the room, and place no call it could not serve.
 */
import { createServer } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboundCallId } from '../../src/agent/callPlan.js';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig } from '../../src/core/config.js';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { systemClock } from '../../src/core/time.js';
import { startDialWorker } from '../../src/consumer/dialWorker.js';
import { enqueueCall } from '../../src/producer/enqueueCalls.js';
import { startResultsWorker } from '../../src/results/resultsWorker.js';
import { startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { runCli, startCli, type CliRun } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';
import { ResultsReader, simClients } from './helpers.js';

const prefix = uniquePrefix('agent-worker');
const AGENT_NAME = 'worker-test-agent';
/**
 * The worker loads agents-js (and its job processes compile src/agent with tsx): allow for a loaded CI machine. Two
 * full test runs at once on 2 cores (load about 12) once took longer than 45 s.
 */
const REGISTER_TIMEOUT_MS = 90_000;
const JOB_TIMEOUT_MS = 45_000;
const DRAIN_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 90_000;
/** agents-js exits 128 + SIGTERM after draining, and `dialer agent` passes its code on. */
const EXIT_AFTER_SIGTERM = 143;
/** AGENT_JOB_SHUTDOWN_TIMEOUT_MS for the worker: no job runs when it is stopped, so only a warming idle process waits it out. */
const JOB_SHUTDOWN_TIMEOUT_MS = 2000;
/** The consumer's callee answers after the agent has given up on the room, so the call never connects. */
const SLOW_ANSWER_MS = 20_000;

let sim: LiveKitSim;
let results: ResultsReader;
let env: Record<string, string>;
let worker: { child: ReturnType<typeof startCli>['child']; done: Promise<CliRun> };
let workerId: string;

/** A port nobody listens on now, for the worker's health-check server (agents-js' 8081 may be taken). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

beforeAll(async () => {
  sim = await startLiveKitSim();
  results = new ResultsReader(testRedisUrl(), prefix);
  env = {
    LIVEKIT_URL: sim.url,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    AGENT_NAME,
    AGENT_HTTP_PORT: String(await freePort()),
    OPENAI_API_KEY: 'sk-test',
    REDIS_URL: testRedisUrl(),
    QUEUE_PREFIX: prefix,
    // the drain below meets an idle job process still warming up, which agents-js 1.9 never lets acknowledge the
    // shutdown: the worker waits this long for it (10 s by default), then kills it and exits as it would anyway
    AGENT_JOB_SHUTDOWN_TIMEOUT_MS: String(JOB_SHUTDOWN_TIMEOUT_MS),
  };
  const registered = waitForEvent(sim.events, 'worker_registered', (e) => e.agentName === AGENT_NAME, REGISTER_TIMEOUT_MS);
  const started = startCli(['agent', 'start'], env);
  worker = started;
  // a worker that exits before it registers fails the setup at once, with what it said (not after the timeout)
  const exited = started.done.then((run) => {
    throw new Error(`the agent worker exited (code ${String(run.code)}) before it registered: ${run.stderr.slice(-2000)}`);
  });
  workerId = (await Promise.race([registered, exited])).workerId;
  exited.catch(() => undefined); // once registered, its later exit is the tests' business
}, REGISTER_TIMEOUT_MS + 5000);

afterAll(async () => {
  if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
  await worker.done.catch(() => undefined);
  await results.close();
  await sim.close();
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

describe('dialer agent start against the simulator', () => {
  it('registers under AGENT_NAME and is offered only the dispatches for that name', { timeout: TEST_TIMEOUT_MS }, async () => {
    expect(sim.agentWorkers()).toEqual([{ id: workerId, agentName: AGENT_NAME, available: true }]);
    const elsewhere = waitForEvent(sim.events, 'job_not_assigned', (e) => e.room === 'call-other', JOB_TIMEOUT_MS);
    await simClients(sim).dispatch.createDispatch('call-other', 'another-agent', { metadata: JSON.stringify({ phone_number: '+15550100124' }) });
    expect((await elsewhere).reason).toBe('no worker registered under this agent name');
    expect(sim.agentJobs).toEqual([]);
  });

  it('a bare dispatch with a phone number (lk dispatch create): the job cannot join the room, reports failed once, deletes it, dials nobody', { timeout: TEST_TIMEOUT_MS }, async () => {
    const assigned = waitForEvent(sim.events, 'job_assigned', (e) => e.room === 'call-worker-1', JOB_TIMEOUT_MS);
    await simClients(sim).dispatch.createDispatch('call-worker-1', AGENT_NAME, { metadata: JSON.stringify({ phone_number: '+15550100123' }) });
    expect(await assigned).toMatchObject({ workerId, agentName: AGENT_NAME });

    const result = await results.waitFor('call-worker-1', JOB_TIMEOUT_MS);
    expect(result).toMatchObject({ callId: 'call-worker-1', outcome: 'failed' });
    expect(result.reason).toMatch(/^agent error: .*no media server/);
    await expect.poll(() => sim.deletedRooms, { timeout: JOB_TIMEOUT_MS }).toContain('call-worker-1');
    expect(sim.calls).toEqual([]);
    expect((await results.all()).filter((r) => r.callId === 'call-worker-1')).toHaveLength(1);
  });

  it('an inbound call through the rule `dialer setup inbound` creates reaches the worker and is reported under in-<room>', { timeout: TEST_TIMEOUT_MS }, async () => {
    const setup = await runCli(['setup', 'inbound'], env);
    expect(setup.code, setup.stderr).toBe(0);
    const inbound = sim.inboundCall({ from: '+14155550177', to: '+15550109100' });
    if (!inbound.ok) throw new Error(`inbound call refused: ${inbound.reason}`);
    expect(inbound.ruleId).toBe(setup.stdout.trim());
    const result = await results.waitFor(inboundCallId(inbound.room), JOB_TIMEOUT_MS);
    expect(result).toMatchObject({ outcome: 'failed', campaignId: 'inbound' });
    expect(sim.agentJobs.find((job) => job.room === inbound.room)?.workerId).toBe(workerId);
  });

  it("a call the consumer dials: its dispatch reaches the worker, whose failure ends the call once; the consumer does not ring it again", { timeout: TEST_TIMEOUT_MS }, async () => {
    const number = '+15550100125';
    sim.network.setBehavior(number, { type: 'answer', afterMs: SLOW_ANSWER_MS, callee: { kind: 'human' } });
    const config = loadConfig({ ...env, DIAL_RETRY_DELAY_S: '1', LOG_LEVEL: 'silent' });
    const logger = pino({ level: 'silent' });
    const resultsWorker = await startResultsWorker({ config, logger });
    const dialer = await startDialWorker({ config, logger });
    const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    try {
      const { callId } = await enqueueCall({ phoneNumber: number, campaignId: 'worker-e2e' }, { connection, prefix, maxAttempts: 3 });
      const store = new CallStore(connection, prefix, systemClock);
      const record = await waitFor(async () => {
        const found = await store.get('worker-e2e', callId);
        return found?.state === 'terminal' ? found : undefined;
      }, JOB_TIMEOUT_MS, 'the call to end');
      expect(record).toMatchObject({ outcome: 'failed', attempts: 1 });
      expect(record.reason).toMatch(/^agent error: .*no media server/);
      const job = sim.agentJobs.find((j) => j.room === record.room);
      expect(job).toMatchObject({ workerId, agentName: AGENT_NAME });
      expect(sim.dispatches.find((d) => d.room === record.room)?.metadata).toContain(`"call_id":"${callId}"`);
      // The consumer's retry (the ringing call was cut when the agent deleted the room) finds the call ended.
      const calls = new Queue(CALLS_QUEUE, { connection, prefix });
      try {
        await waitFor(async () => ((await calls.getJobState(callId)) === 'completed' ? true : undefined), JOB_TIMEOUT_MS, 'the dial job to complete');
      } finally {
        await calls.close();
      }
      // rung once at most: on a loaded host the agent's failure can end the call before the consumer's claim, which
      // then finds it ended and dials nothing (either order is one outcome)
      expect(sim.calls.filter((c) => c.phoneNumber === number).length).toBeLessThanOrEqual(1);
      expect((await results.all()).filter((r) => r.callId === callId)).toHaveLength(1);
    } finally {
      await dialer.close();
      await resultsWorker.close();
      await connection.quit();
    }
  });

  it('the first SIGTERM drains the worker, which leaves and exits 143', { timeout: TEST_TIMEOUT_MS }, async () => {
    const deregistered = waitForEvent(sim.events, 'worker_deregistered', (e) => e.workerId === workerId, DRAIN_TIMEOUT_MS);
    worker.child.kill('SIGTERM');
    await deregistered;
    const exit = await worker.done;
    expect(exit.code, exit.stderr).toBe(EXIT_AFTER_SIGTERM);
  });
});
