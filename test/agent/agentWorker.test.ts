/**
 * `dialer agent start`, the real agents-js worker in its own processes, against the simulator's `/agent` endpoint:
 * it registers under AGENT_NAME, takes only the dispatches for that name (a `lk dispatch create`, and an inbound
 * call through the rule `dialer setup inbound` creates), and runs src/agent's job in a job process.
 * The sim has no media server, so the job's room connection is refused: the call job must still report exactly one
 * outcome (failed, naming why), delete the room, and place no call it could not serve.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboundCallId } from '../../src/agent/callPlan.js';
import { startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { runCli, startCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { ResultsReader, simClients } from './helpers.js';

const prefix = uniquePrefix('agent-worker');
const AGENT_NAME = 'worker-test-agent';
/** The worker loads agents-js (and its job processes compile src/agent with tsx): allow for a loaded CI machine. */
const REGISTER_TIMEOUT_MS = 45_000;
const JOB_TIMEOUT_MS = 45_000;
const DRAIN_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 150_000;
/** agents-js exits 128 + SIGTERM after draining, and `dialer agent` passes its code on. */
const EXIT_AFTER_SIGTERM = 143;

let sim: LiveKitSim;
let results: ResultsReader;

beforeAll(async () => {
  sim = await startLiveKitSim();
  results = new ResultsReader(testRedisUrl(), prefix);
});

afterAll(async () => {
  await results.close();
  await sim.close();
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

/** A port nobody listens on now, for the worker's health-check server (agents-js' 8081 may be taken). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('dialer agent start against the simulator', () => {
  it(
    'registers under AGENT_NAME, runs only its dispatches (self-dial and inbound); a job that cannot join the room reports failed once, deletes it, dials nobody; SIGTERM drains and exits 143',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const registered = waitForEvent(sim.events, 'worker_registered', (e) => e.agentName === AGENT_NAME, REGISTER_TIMEOUT_MS);
      const env = {
        LIVEKIT_URL: sim.url,
        LIVEKIT_API_KEY: sim.apiKey,
        LIVEKIT_API_SECRET: sim.apiSecret,
        SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
        AGENT_NAME,
        AGENT_HTTP_PORT: String(await freePort()),
        OPENAI_API_KEY: 'sk-test',
        REDIS_URL: testRedisUrl(),
        QUEUE_PREFIX: prefix,
      };
      const worker = startCli(['agent', 'start'], env);
      try {
        const { workerId } = await registered;
        const dispatch = simClients(sim).dispatch;

        const elsewhere = waitForEvent(sim.events, 'job_not_assigned', (e) => e.room === 'call-other', JOB_TIMEOUT_MS);
        await dispatch.createDispatch('call-other', 'another-agent', { metadata: JSON.stringify({ phone_number: '+15550100124' }) });
        expect((await elsewhere).reason).toBe('no worker registered under this agent name');

        // The telephony guide's `lk dispatch create --new-room --agent-name … --metadata '{"phone_number": …}'`.
        const assigned = waitForEvent(sim.events, 'job_assigned', (e) => e.room === 'call-worker-1', JOB_TIMEOUT_MS);
        await dispatch.createDispatch('call-worker-1', AGENT_NAME, { metadata: JSON.stringify({ phone_number: '+15550100123' }) });
        expect(await assigned).toMatchObject({ workerId, agentName: AGENT_NAME });

        const result = await results.waitFor('call-worker-1', JOB_TIMEOUT_MS);
        expect(result).toMatchObject({ callId: 'call-worker-1', outcome: 'failed' });
        expect(result.reason).toMatch(/^agent error: .*no media server/);
        await expect.poll(() => sim.deletedRooms, { timeout: JOB_TIMEOUT_MS }).toContain('call-worker-1');
        expect(sim.calls).toEqual([]);
        expect(await results.count()).toBe(1);
        expect(sim.agentJobs.map((job) => job.room)).toEqual(['call-worker-1']);

        // An inbound call through the rule `dialer setup inbound` creates (the shipped dispatch-rule.json).
        const setup = await runCli(['setup', 'inbound'], env);
        expect(setup.code, setup.stderr).toBe(0);
        const inbound = sim.inboundCall({ from: '+14155550177', to: '+15550109100' });
        if (!inbound.ok) throw new Error(`inbound call refused: ${inbound.reason}`);
        expect(inbound.ruleId).toBe(setup.stdout.trim());
        const inboundResult = await results.waitFor(inboundCallId(inbound.room), JOB_TIMEOUT_MS);
        expect(inboundResult).toMatchObject({ outcome: 'failed', campaignId: 'inbound' });
        expect(sim.agentJobs.map((job) => job.room)).toEqual(['call-worker-1', inbound.room]);

        const deregistered = waitForEvent(sim.events, 'worker_deregistered', (e) => e.workerId === workerId, DRAIN_TIMEOUT_MS);
        worker.child.kill('SIGTERM');
        await deregistered;
        const exit = await worker.done;
        expect(exit.code, exit.stderr).toBe(EXIT_AFTER_SIGTERM);
      } finally {
        if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
        await worker.done.catch(() => undefined);
      }
    },
  );
});
