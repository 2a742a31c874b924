/**
 * The agent's participant in the simulator's rooms: it appears (kind AGENT, identity agent-<job id>, lk.agent.name)
 * when a worker accepts the dispatch's job, and leaves when the job ends, its worker goes away or the room is deleted.
 * A dispatch no worker takes (none registered, every one full) exists with no job, and nobody joins its room.
 */
import { ParticipantInfo_Kind } from '@livekit/protocol';
import { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectSimAgentWorker, type AssignedSimJob, type SimAgentWorker } from '../../src/harness/simAgentWorker.js';
import { AGENT_NAME_ATTRIBUTE, startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { waitFor } from '../helpers/waitFor.js';

const AGENT = 'telephony-agent';
const TIMEOUT_MS = 3000;

let sim: LiveKitSim;
let rooms: RoomServiceClient;
let dispatch: AgentDispatchClient;
const workers: SimAgentWorker[] = [];

beforeEach(async () => {
  sim = await startLiveKitSim();
  rooms = new RoomServiceClient(sim.url, sim.apiKey, sim.apiSecret);
  dispatch = new AgentDispatchClient(sim.url, sim.apiKey, sim.apiSecret);
});

afterEach(async () => {
  for (const worker of workers.splice(0)) await worker.close();
  await sim.close();
});

async function worker(options: { full?: boolean } = {}): Promise<{ worker: SimAgentWorker; jobs: AssignedSimJob[] }> {
  const jobs: AssignedSimJob[] = [];
  const connected = await connectSimAgentWorker({ url: sim.url, apiKey: sim.apiKey, apiSecret: sim.apiSecret, agentName: AGENT, onJob: (job) => jobs.push(job), ...options });
  workers.push(connected);
  return { worker: connected, jobs };
}

async function agentsIn(room: string): Promise<{ identity: string; agentName: string | undefined }[]> {
  return (await rooms.listParticipants(room))
    .filter((p) => p.kind === ParticipantInfo_Kind.AGENT)
    .map((p) => ({ identity: p.identity, agentName: p.attributes[AGENT_NAME_ATTRIBUTE] }));
}

describe('the agent participant of a dispatch', () => {
  it('joins when a worker accepts the job, as agent-<job id> of kind AGENT, and leaves (CLIENT_INITIATED) when the job ends', async () => {
    const { worker: w, jobs } = await worker();
    const joined = waitForEvent(sim.events, 'participant_joined', (e) => e.room === 'call-a-1', TIMEOUT_MS);
    await dispatch.createDispatch('call-a-1', AGENT, { metadata: '{}' });
    const [job] = await waitFor(() => (jobs.length > 0 ? jobs : undefined), TIMEOUT_MS, 'assignment');
    expect(await joined).toMatchObject({ identity: `agent-${job?.id ?? ''}`, kind: 'AGENT' });
    expect(await agentsIn('call-a-1')).toEqual([{ identity: `agent-${job?.id ?? ''}`, agentName: AGENT }]);

    const left = waitForEvent(sim.events, 'participant_left', (e) => e.room === 'call-a-1', TIMEOUT_MS);
    w.jobEnded(job?.id ?? '');
    expect(await left).toMatchObject({ identity: `agent-${job?.id ?? ''}`, reason: 'CLIENT_INITIATED' });
    expect(await agentsIn('call-a-1')).toEqual([]);
  });

  it('leaves with ROOM_DELETED when the room is deleted, and with its worker when the worker disconnects', async () => {
    const { worker: w, jobs } = await worker();
    await dispatch.createDispatch('call-b-1', AGENT, { metadata: '{}' });
    await dispatch.createDispatch('call-b-2', AGENT, { metadata: '{}' });
    await waitFor(() => (jobs.length === 2 ? true : undefined), TIMEOUT_MS, 'two assignments');

    const removed = waitForEvent(sim.events, 'participant_left', (e) => e.room === 'call-b-1', TIMEOUT_MS);
    await rooms.deleteRoom('call-b-1');
    expect(await removed).toMatchObject({ kind: 'AGENT', reason: 'ROOM_DELETED' });

    const gone = waitForEvent(sim.events, 'participant_left', (e) => e.room === 'call-b-2', TIMEOUT_MS);
    await w.close();
    expect(await gone).toMatchObject({ kind: 'AGENT', reason: 'CLIENT_INITIATED' });
    expect(await agentsIn('call-b-2')).toEqual([]);
  });

  it('with no worker registered, the dispatch exists without a job and nobody joins its room', async () => {
    const notTaken = waitForEvent(sim.events, 'job_not_assigned', (e) => e.room === 'call-c-1', TIMEOUT_MS);
    const created = await dispatch.createDispatch('call-c-1', AGENT, { metadata: '{}' });
    expect(await notTaken).toMatchObject({ reason: 'no worker registered under this agent name' });
    const [listed] = await dispatch.listDispatch('call-c-1');
    expect(listed?.id).toBe(created.id);
    expect(listed?.state?.jobs).toEqual([]);
    expect(await rooms.listParticipants('call-c-1')).toEqual([]);
  });

  it('with every worker at its load threshold (WS_FULL), no job is offered: "no servers available", nobody joins', async () => {
    const { jobs } = await worker({ full: true });
    await waitFor(() => (sim.agentWorkers().every((w) => !w.available) ? true : undefined), TIMEOUT_MS, 'worker full');
    const notTaken = waitForEvent(sim.events, 'job_not_assigned', (e) => e.room === 'call-d-1', TIMEOUT_MS);
    await dispatch.createDispatch('call-d-1', AGENT, { metadata: '{}' });
    expect((await notTaken).reason).toBe('no servers available: every worker under this agent name is full');
    expect(jobs).toEqual([]);
    expect(await agentsIn('call-d-1')).toEqual([]);
  });
});
