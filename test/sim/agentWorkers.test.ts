/** The agent-worker protocol on `/agent`: registration, explicit dispatch by agent name, assignment tokens, termination. */
import {
  AvailabilityResponse,
  JobType,
  RegisterWorkerRequest,
  ServerMessage,
  UpdateWorkerStatus,
  WorkerMessage,
  WorkerPing,
  WorkerStatus,
} from '@livekit/protocol';
import { decodeJwt } from 'jose';
import { AccessToken } from 'livekit-server-sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AGENT_NAME_ATTRIBUTE, startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { waitFor } from '../helpers/waitFor.js';
import { clientsFor, type SimClients } from './simClients.js';

const MESSAGE_TIMEOUT_MS = 3000;

let sim: LiveKitSim;
let clients: SimClients;
const sockets: WebSocket[] = [];

beforeEach(async () => {
  sim = await startLiveKitSim();
  clients = clientsFor(sim);
});

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.terminate();
  await sim.close();
});

type ServerCase = NonNullable<ServerMessage['message']['case']>;
type ServerValue<C extends ServerCase> = Extract<ServerMessage['message'], { case: C }>['value'];

/** A hand-written agent worker: what agents-js' Worker sends, one message at a time. */
class TestWorker {
  private readonly inbox: ServerMessage[] = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.inbox.push(ServerMessage.fromBinary(data));
    });
  }

  send(message: WorkerMessage['message']): void {
    this.ws.send(new WorkerMessage({ message }).toBinary());
  }

  /** The next server message, which must be of `kind`. */
  async next<C extends ServerCase>(kind: C, timeoutMs = MESSAGE_TIMEOUT_MS): Promise<ServerValue<C>> {
    const message = await waitFor(() => this.inbox.shift(), timeoutMs, `a ${kind} message`);
    if (message.message.case !== kind) throw new Error(`expected ${kind}, got ${message.message.case ?? 'nothing'}`);
    return message.message.value as ServerValue<C>;
  }

  /** True when nothing arrives within `ms`. */
  async silentFor(ms: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.inbox.length === 0;
  }

  async register(agentName: string): Promise<string> {
    this.send({ case: 'register', value: new RegisterWorkerRequest({ type: JobType.JT_ROOM, agentName, version: '1.9.0' }) });
    const reply = await this.next('register');
    return reply.workerId;
  }
}

async function workerToken(grant: { agent?: boolean } = { agent: true }): Promise<string> {
  const token = new AccessToken(sim.apiKey, sim.apiSecret);
  token.addGrant(grant);
  return token.toJwt();
}

function agentUrl(): string {
  return `${sim.url.replace('http', 'ws')}/agent`;
}

/** Opens `/agent`; resolves with the worker, or with the HTTP status the upgrade was refused with. */
function connect(token: string): Promise<TestWorker | { refused: number; body: string }> {
  const ws = new WebSocket(agentUrl(), { headers: { authorization: `Bearer ${token}` } });
  sockets.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(new TestWorker(ws)));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ refused: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

async function registeredWorker(agentName: string): Promise<TestWorker> {
  const worker = await connect(await workerToken());
  if (!(worker instanceof TestWorker)) throw new Error(`refused: ${worker.refused}`);
  await worker.register(agentName);
  return worker;
}

describe('worker registration on /agent', () => {
  it('refuses a token without the agent grant, and a token signed with another secret', async () => {
    expect(await connect(await workerToken({}))).toEqual({ refused: 401, body: 'permissions denied' });
    const forged = new AccessToken(sim.apiKey, 'not-the-secret');
    forged.addGrant({ agent: true });
    const refused = await connect(await forged.toJwt());
    expect(refused).toMatchObject({ refused: 401 });
  });

  it('answers register with a worker id and the server info, and ping with pong', async () => {
    const worker = await connect(await workerToken());
    if (!(worker instanceof TestWorker)) throw new Error('refused');
    const registered = waitForEvent(sim.events, 'worker_registered');
    worker.send({ case: 'register', value: new RegisterWorkerRequest({ type: JobType.JT_ROOM, agentName: 'telephony-agent' }) });
    const reply = await worker.next('register');
    expect(reply.workerId).toMatch(/^AW_/);
    expect(reply.serverInfo?.agentProtocol).toBeGreaterThan(0);
    expect(await registered).toMatchObject({ workerId: reply.workerId, agentName: 'telephony-agent' });
    expect(sim.agentWorkers()).toEqual([{ id: reply.workerId, agentName: 'telephony-agent', available: true }]);

    worker.send({ case: 'ping', value: new WorkerPing({ timestamp: 1234n }) });
    expect((await worker.next('pong')).lastTimestamp).toBe(1234n);

    const gone = waitForEvent(sim.events, 'worker_deregistered');
    worker.ws.close();
    expect(await gone).toMatchObject({ workerId: reply.workerId });
    expect(sim.agentWorkers()).toEqual([]);
  });

  it('a path that is not an API or /agent refuses to upgrade; /rtc says the sim has no media server', async () => {
    const ws = new WebSocket(`${sim.url.replace('http', 'ws')}/rtc?access_token=x`);
    sockets.push(ws);
    const refusal = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('error', reject);
    });
    expect(refusal.status).toBe(404);
    expect(refusal.body).toContain('no media server');
  });
});

describe('explicit dispatch by agent name', () => {
  it('offers a dispatch to the worker of that name only; accepting it assigns a room token for the identity it asked', async () => {
    const telephony = await registeredWorker('telephony-agent');
    const other = await registeredWorker('other-agent');
    const metadata = JSON.stringify({ phone_number: '+15550101234', call_id: 'c-1' });
    const dispatch = await clients.dispatch.createDispatch('call-c-1', 'telephony-agent', { metadata });

    const offer = await telephony.next('availability');
    const job = offer.job;
    expect(job).toMatchObject({ dispatchId: dispatch.id, agentName: 'telephony-agent', metadata, type: JobType.JT_ROOM });
    expect(job?.id).toMatch(/^AJ_/);
    expect(job?.room?.name).toBe('call-c-1');
    expect(await other.silentFor(100)).toBe(true);

    const assigned = waitForEvent(sim.events, 'job_assigned');
    telephony.send({
      case: 'availability',
      value: new AvailabilityResponse({
        jobId: job?.id,
        available: true,
        participantIdentity: 'agent-1',
        participantName: 'Dialer agent',
        participantAttributes: { role: 'caller' },
      }),
    });
    const assignment = await telephony.next('assignment');
    expect(assignment.job?.id).toBe(job?.id);
    const claims = decodeJwt(assignment.token);
    expect(claims).toMatchObject({
      sub: 'agent-1',
      name: 'Dialer agent',
      kind: 'agent',
      attributes: { role: 'caller', [AGENT_NAME_ATTRIBUTE]: 'telephony-agent' },
      video: { roomJoin: true, room: 'call-c-1', agent: true },
    });
    expect(await assigned).toMatchObject({ id: job?.id, dispatchId: dispatch.id, room: 'call-c-1', participantIdentity: 'agent-1' });
    expect(sim.agentJobs).toHaveLength(1);
    const [listed] = await clients.dispatch.listDispatch('call-c-1');
    expect(listed?.state?.jobs.map((j) => [j.id, j.state?.participantIdentity])).toEqual([[job?.id, 'agent-1']]);
  });

  it('a dispatch for a name no worker has is not launched', async () => {
    const worker = await registeredWorker('telephony-agent');
    const notAssigned = waitForEvent(sim.events, 'job_not_assigned');
    await clients.dispatch.createDispatch('call-c-2', 'someone-else', { metadata: '{}' });
    expect(await notAssigned).toMatchObject({ room: 'call-c-2', agentName: 'someone-else', reason: 'no worker registered under this agent name' });
    expect(await worker.silentFor(100)).toBe(true);
    expect(sim.agentJobs).toEqual([]);
  });

  it('a worker that declines is skipped for the next; a full worker gets no offer; if none accepts, nothing is launched', async () => {
    const first = await registeredWorker('telephony-agent');
    const second = await registeredWorker('telephony-agent');
    second.send({ case: 'updateWorker', value: new UpdateWorkerStatus({ status: WorkerStatus.WS_FULL, load: 1 }) });
    await waitFor(() => sim.agentWorkers().some((w) => !w.available) || undefined, MESSAGE_TIMEOUT_MS, 'worker full');

    const notAssigned = waitForEvent(sim.events, 'job_not_assigned');
    await clients.dispatch.createDispatch('call-c-3', 'telephony-agent', { metadata: '{}' });
    const offer = await first.next('availability');
    first.send({ case: 'availability', value: new AvailabilityResponse({ jobId: offer.job?.id, available: false }) });
    expect(await notAssigned).toMatchObject({ reason: 'no worker accepted the job' });
    expect(await second.silentFor(100)).toBe(true);

    second.send({ case: 'updateWorker', value: new UpdateWorkerStatus({ status: WorkerStatus.WS_AVAILABLE, load: 0 }) });
    await waitFor(() => sim.agentWorkers().every((w) => w.available) || undefined, MESSAGE_TIMEOUT_MS, 'worker available');
    await clients.dispatch.createDispatch('call-c-4', 'telephony-agent', { metadata: '{}' });
    const offers = await Promise.race([first.next('availability').then(() => 'first'), second.next('availability').then(() => 'second')]);
    expect(['first', 'second']).toContain(offers);
  });

  it('deleting the dispatch terminates its job on the worker', async () => {
    const worker = await registeredWorker('telephony-agent');
    const dispatch = await clients.dispatch.createDispatch('call-c-5', 'telephony-agent', { metadata: '{}' });
    const offer = await worker.next('availability');
    worker.send({ case: 'availability', value: new AvailabilityResponse({ jobId: offer.job?.id, available: true, participantIdentity: 'agent-5' }) });
    await worker.next('assignment');
    const ended = waitForEvent(sim.events, 'job_status');
    await clients.dispatch.deleteDispatch(dispatch.id, 'call-c-5');
    expect((await worker.next('termination')).jobId).toBe(offer.job?.id);
    expect(await ended).toMatchObject({ jobId: offer.job?.id, status: 'JS_SUCCESS' });
  });
});
