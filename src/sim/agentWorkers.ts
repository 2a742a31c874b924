/**
 * The agent-worker half of livekit-server (pkg/service/agentservice.go, pkg/agent/worker.go), read not copied:
 * - workers open a WebSocket on `/agent` with a token carrying the `agent` grant (else HTTP 401), then must send
 *   `register` within 10 s; the reply carries a worker id (`AW_…`) and the server info;
 * - each dispatch created for an agent name is offered, as a JT_ROOM job (`AJ_…`), to an available worker registered
 *   under exactly that name: `availability` request → the worker's answer (10 s) → `assignment` with a participant
 *   token for the room built from the identity, name, metadata and attributes the worker asked for (plus
 *   `lk.agent.name`); a worker that declines is skipped for the next; with no worker, nothing is launched;
 * - deleting a dispatch sends `termination` for its jobs; `ping` is answered with `pong`; `updateWorker` sets the
 *   worker's status (a full worker gets no offers) and `updateJob` the job's state;
 * - a worker at or above its load threshold reports `WS_FULL` (agents-js src/worker.ts: `loadThreshold` 0.7 in
 *   production, `updateWorker {status: WS_FULL}`), and livekit-server offers it nothing: a dispatch that finds every
 *   worker of its name full, or none at all, is left without a job ("no servers available" in livekit-server's log).
 *   The dispatch still exists (ListDispatch shows it, with no job) and nobody joins its room.
 * The agent's participant (agents-js src/job.ts `JobRequest.accept`: identity `agent-<job id>` unless the worker
 * names one; src/worker.ts stamps `lk.agent.name`; the assignment's token has kind `agent`, so livekit-server lists it
 * as ParticipantInfo kind AGENT): a real agent joins the room over `/rtc` with that token right after the assignment.
 * The sim has no media server, so it stands the participant in at the assignment (or `agentJoinDelayMs` after it:
 * a job process that takes that long to connect, as agents-js' does under load, its job listed by ListDispatch
 * meanwhile, as livekit-server lists a job once its worker accepted it), with the identity, name, metadata
 * and attributes the worker asked for. It leaves (CLIENT_INITIATED) when its job ends (`updateJob` success or failure,
 * the dispatch deleted) or its worker disconnects, and with ROOM_DELETED when the room is deleted.
 * Not modelled: automatic dispatch of workers registered without a name, namespaces, deployments, job types other
 * than rooms, and media: the sim has no SFU, so a job's room connection (`/rtc`) is refused (a real agents-js worker
 * served by the sim therefore shows a participant that never really joined; it leaves with the room or the worker).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  AvailabilityRequest,
  Job,
  JobAssignment,
  JobState,
  JobStatus,
  JobTermination,
  JobType,
  ParticipantPermission,
  RegisterWorkerResponse,
  ServerInfo,
  ServerInfo_Edition,
  ServerMessage,
  WorkerMessage,
  WorkerPong,
  WorkerStatus,
  type AvailabilityResponse,
} from '@livekit/protocol';
import { AccessToken } from 'livekit-server-sdk';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { SECOND, type Clock } from '../core/time.js';
import { authenticate } from './auth.js';
import type { JobAssignedEvent, JobStatusEvent, SimEvents } from './events.js';
import { ID_PREFIX, newId } from './ids.js';
import type { RoomState, SimDispatch } from './roomState.js';
import { writeRawText } from './twirpServer.js';

export const AGENT_PATH = '/agent';
/** pkg/agent/worker.go RegisterTimeout and AssignJobTimeout. */
export const REGISTER_TIMEOUT_MS = 10 * SECOND;
export const ASSIGN_JOB_TIMEOUT_MS = 10 * SECOND;
/** The attribute livekit-server stamps on every agent participant (agent.AgentNameAttributeKey). */
export const AGENT_NAME_ATTRIBUTE = 'lk.agent.name';
/** Agent participant tokens live as long as livekit-server's (protoagent.BuildAgentToken: 6 h). */
const AGENT_TOKEN_TTL_S = 6 * 60 * 60;
const NS_PER_MS = 1_000_000n;
/** agents-js `JobRequest.accept`: the agent's identity when the worker names none. */
const AGENT_IDENTITY_PREFIX = 'agent-';
/** ServerInfo the sim reports: the agent protocol version agents-js 1.x speaks. */
const SERVER_VERSION = '1.9.0-sim';
const AGENT_PROTOCOL = 1;
const WS_POLICY_VIOLATION = 1008;
const HTTP_UNAUTHORIZED = 401;
const HTTP_UNAVAILABLE = 503;

interface RegisteredWorker {
  id: string;
  agentName: string;
  version: string;
  jobType: JobType;
  permissions: ParticipantPermission;
  socket: WebSocket;
  status: WorkerStatus;
  load: number;
  /** Availability answers awaited, by job id. */
  pendingOffers: Map<string, (answer: AvailabilityResponse | undefined) => void>;
  /** Jobs assigned to this worker and not ended. */
  jobs: Map<string, Job>;
}

/** A job the sim handed to a worker, for inspection. */
export interface SimAgentJob extends Omit<JobAssignedEvent, 'at'> {
  status: JobStatusEvent['status'];
  error: string;
}

export interface AgentWorkersOptions {
  apiKey: string;
  apiSecret: string;
  clock: Clock;
  events: SimEvents;
  rooms: RoomState;
  /** How long after its assignment a job's agent joins its room (default 0: at once). */
  agentJoinDelayMs?: number;
}

/** Registered agent workers and the jobs the sim's dispatches give them. */
export class AgentWorkers {
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly workers = new Map<string, RegisteredWorker>();
  private readonly jobsById = new Map<string, SimAgentJob>();
  private readonly jobIdsByDispatch = new Map<string, string[]>();
  /** The participant each running job stands in the room (see the module comment), by job id. */
  private readonly agentParticipants = new Map<string, { room: string; identity: string }>();
  private closed = false;
  /** How long after its assignment a job's agent joins its room (see the module comment). */
  agentJoinDelayMs: number;
  /** Joins still waiting out agentJoinDelayMs, cleared on close. */
  private readonly delayedJoins = new Set<NodeJS.Timeout>();

  constructor(private readonly options: AgentWorkersOptions) {
    this.agentJoinDelayMs = options.agentJoinDelayMs ?? 0;
    options.events.on('dispatch_created', (event) => {
      const dispatch = options.rooms.listDispatches(event.room)?.find((d) => d.id === event.dispatchId);
      if (dispatch) void this.launch(dispatch);
    });
    options.events.on('dispatch_deleted', (event) => this.terminateDispatch(event.dispatchId));
    // A deleted room took its agents with it (ROOM_DELETED): forget them.
    options.events.on('room_deleted', (event) => {
      for (const [jobId, joined] of this.agentParticipants) if (joined.room === event.room) this.agentParticipants.delete(jobId);
    });
  }

  /** Every job ever assigned, in order. */
  get jobs(): SimAgentJob[] {
    return [...this.jobsById.values()].map((job) => ({ ...job }));
  }

  /** Registered workers: id, agent name and whether they take jobs now. */
  registered(): { id: string; agentName: string; available: boolean }[] {
    return [...this.workers.values()].map((w) => ({ id: w.id, agentName: w.agentName, available: w.status === WorkerStatus.WS_AVAILABLE }));
  }

  /** HTTP upgrade handler for `/agent`: checks the agent grant, then speaks the worker protocol on the socket. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const token = new URL(req.url ?? '/', 'http://sim').searchParams.get('access_token');
    const auth = await authenticate(req.headers.authorization ?? (token ? `Bearer ${token}` : undefined), this.options.apiKey, this.options.apiSecret);
    if (!auth.ok) return writeRawText(socket, auth.status, auth.text);
    if (!auth.grants.video?.agent) return writeRawText(socket, HTTP_UNAUTHORIZED, 'permissions denied');
    if (this.closed) return writeRawText(socket, HTTP_UNAVAILABLE, 'server shutting down');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws));
  }

  private serve(ws: WebSocket): void {
    let worker: RegisteredWorker | undefined;
    const registerTimer = setTimeout(() => ws.close(WS_POLICY_VIOLATION, 'worker did not register'), REGISTER_TIMEOUT_MS);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      let message: WorkerMessage;
      try {
        message = WorkerMessage.fromBinary(isBinary ? toBuffer(data) : Buffer.alloc(0));
      } catch {
        ws.close(WS_POLICY_VIOLATION, 'malformed worker message');
        return;
      }
      const msg = message.message;
      if (msg.case === 'ping') {
        send(ws, { case: 'pong', value: new WorkerPong({ lastTimestamp: msg.value.timestamp, timestamp: BigInt(this.options.clock.now()) }) });
        return;
      }
      if (!worker) {
        if (msg.case !== 'register') return; // livekit-server ignores everything else until registration
        clearTimeout(registerTimer);
        worker = this.register(ws, msg.value.agentName, msg.value.version, msg.value.allowedPermissions, msg.value.type);
        return;
      }
      this.handle(worker, message);
    });
    ws.on('close', () => {
      clearTimeout(registerTimer);
      if (worker) this.deregister(worker);
    });
    ws.on('error', () => ws.terminate());
  }

  private register(ws: WebSocket, agentName: string, version: string, permissions: ParticipantPermission | undefined, type: JobType): RegisteredWorker | undefined {
    if (type !== JobType.JT_ROOM && type !== JobType.JT_PUBLISHER && type !== JobType.JT_PARTICIPANT) {
      ws.close(WS_POLICY_VIOLATION, 'unknown job type');
      return undefined;
    }
    const worker: RegisteredWorker = {
      id: newId(ID_PREFIX.agentWorker),
      agentName,
      version,
      jobType: type,
      permissions: permissions ?? new ParticipantPermission({ canSubscribe: true, canPublish: true, canPublishData: true, canUpdateMetadata: true }),
      socket: ws,
      status: WorkerStatus.WS_AVAILABLE,
      load: 0,
      pendingOffers: new Map(),
      jobs: new Map(),
    };
    this.workers.set(worker.id, worker);
    send(ws, {
      case: 'register',
      value: new RegisterWorkerResponse({
        workerId: worker.id,
        serverInfo: new ServerInfo({ edition: ServerInfo_Edition.Standard, version: SERVER_VERSION, agentProtocol: AGENT_PROTOCOL, nodeId: 'ND_sim' }),
      }),
    });
    this.options.events.emit('worker_registered', { workerId: worker.id, agentName, at: this.options.clock.now() });
    return worker;
  }

  private deregister(worker: RegisteredWorker): void {
    this.workers.delete(worker.id);
    for (const answer of worker.pendingOffers.values()) answer(undefined);
    worker.pendingOffers.clear();
    // The worker's job processes go with it: their agents leave their rooms.
    for (const jobId of worker.jobs.keys()) this.agentLeaves(jobId);
    this.options.events.emit('worker_deregistered', { workerId: worker.id, agentName: worker.agentName, at: this.options.clock.now() });
  }

  private handle(worker: RegisteredWorker, message: WorkerMessage): void {
    const msg = message.message;
    switch (msg.case) {
      case 'availability': {
        const answer = worker.pendingOffers.get(msg.value.jobId);
        worker.pendingOffers.delete(msg.value.jobId);
        answer?.(msg.value);
        break;
      }
      case 'updateWorker':
        if (msg.value.status !== undefined) worker.status = msg.value.status;
        worker.load = msg.value.load;
        break;
      case 'updateJob':
        this.updateJob(worker, msg.value.jobId, msg.value.status, msg.value.error);
        break;
      default:
        break; // simulateJob and migrateJob are not modelled; register twice is ignored like livekit-server
    }
  }

  /** LaunchJob for one dispatch: offer it to the workers of its agent name until one accepts. */
  private async launch(dispatch: SimDispatch): Promise<void> {
    const tried = new Set<string>();
    for (;;) {
      const worker = this.pickWorker(dispatch.agentName, tried);
      if (!worker) {
        this.options.events.emit('job_not_assigned', {
          room: dispatch.room,
          dispatchId: dispatch.id,
          agentName: dispatch.agentName,
          reason: this.unassignedReason(dispatch.agentName, tried.size),
          at: this.options.clock.now(),
        });
        return;
      }
      tried.add(worker.id);
      if (await this.assign(worker, dispatch)) return;
    }
  }

  /** Why a dispatch got no job: nobody of its name, every one full (livekit-server: "no servers available"), or all declined. */
  private unassignedReason(agentName: string, tried: number): string {
    if (tried > 0) return 'no worker accepted the job';
    const named = [...this.workers.values()].filter((w) => w.agentName === agentName);
    if (named.length === 0) return 'no worker registered under this agent name';
    return 'no servers available: every worker under this agent name is full';
  }

  private pickWorker(agentName: string, tried: ReadonlySet<string>): RegisteredWorker | undefined {
    // livekit-server picks at random weighted by spare capacity; the least loaded is the deterministic equivalent.
    return [...this.workers.values()]
      .filter((w) => w.agentName === agentName && w.jobType === JobType.JT_ROOM && w.status === WorkerStatus.WS_AVAILABLE && !tried.has(w.id))
      .sort((a, b) => a.load - b.load)[0];
  }

  private async assign(worker: RegisteredWorker, dispatch: SimDispatch): Promise<boolean> {
    const room = this.options.rooms.roomProto(dispatch.room);
    if (!room) return true; // the room is gone: nothing to launch, and no other worker would do better
    const nowNs = BigInt(this.options.clock.now()) * NS_PER_MS;
    const job = new Job({
      id: newId(ID_PREFIX.agentJob),
      dispatchId: dispatch.id,
      type: JobType.JT_ROOM,
      room,
      metadata: dispatch.metadata,
      agentName: dispatch.agentName,
      state: new JobState({ status: JobStatus.JS_RUNNING, workerId: worker.id, startedAt: nowNs, updatedAt: nowNs }),
    });
    const answer = await new Promise<AvailabilityResponse | undefined>((resolve) => {
      const timer = setTimeout(() => {
        worker.pendingOffers.delete(job.id);
        resolve(undefined);
      }, ASSIGN_JOB_TIMEOUT_MS);
      worker.pendingOffers.set(job.id, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
      send(worker.socket, { case: 'availability', value: new AvailabilityRequest({ job }) });
    });
    if (!answer || !answer.available) return answer?.terminate === true;

    const identity = answer.participantIdentity || `${AGENT_IDENTITY_PREFIX}${job.id}`;
    if (job.state) job.state.participantIdentity = identity;
    const token = await this.agentToken(worker, dispatch.room, answer);
    send(worker.socket, { case: 'assignment', value: new JobAssignment({ job, token }) });
    worker.jobs.set(job.id, job);
    dispatch.jobs.push(job);
    const record: SimAgentJob = {
      id: job.id,
      dispatchId: dispatch.id,
      room: dispatch.room,
      agentName: dispatch.agentName,
      workerId: worker.id,
      participantIdentity: identity,
      status: 'JS_RUNNING',
      error: '',
    };
    this.jobsById.set(job.id, record);
    this.jobIdsByDispatch.set(dispatch.id, [...(this.jobIdsByDispatch.get(dispatch.id) ?? []), job.id]);
    const { status: _status, error: _error, ...assigned } = record;
    this.options.events.emit('job_assigned', { ...assigned, at: this.options.clock.now() });
    if (this.agentJoinDelayMs <= 0) {
      this.agentJoins(job.id, dispatch.room, worker.agentName, identity, answer);
      return true;
    }
    // the job process is still connecting: its job is listed, its agent not in the room yet
    const timer = setTimeout(() => {
      this.delayedJoins.delete(timer);
      if (worker.jobs.has(job.id) && this.workers.has(worker.id)) this.agentJoins(job.id, dispatch.room, worker.agentName, identity, answer);
    }, this.agentJoinDelayMs);
    this.delayedJoins.add(timer);
    return true;
  }

  /** The job's agent joins its room (stood in at the assignment: see the module comment); not into a deleted room. */
  private agentJoins(jobId: string, room: string, agentName: string, identity: string, answer: AvailabilityResponse): void {
    if (!this.options.rooms.has(room)) return;
    this.options.rooms.addParticipant(room, {
      identity,
      name: answer.participantName,
      metadata: answer.participantMetadata,
      attributes: { ...answer.participantAttributes, [AGENT_NAME_ATTRIBUTE]: agentName },
      kind: 'AGENT',
    });
    this.agentParticipants.set(jobId, { room, identity });
  }

  /** The job's agent leaves its room (the job ended, or its worker went away); nothing when it is gone already. */
  private agentLeaves(jobId: string): void {
    const joined = this.agentParticipants.get(jobId);
    if (!joined) return;
    this.agentParticipants.delete(jobId);
    this.options.rooms.removeParticipant(joined.room, joined.identity, 'CLIENT_INITIATED');
  }

  /** protoagent.BuildAgentToken: a hidden-or-not agent participant of that room, with the worker's permissions. */
  private agentToken(worker: RegisteredWorker, room: string, answer: AvailabilityResponse): Promise<string> {
    const token = new AccessToken(this.options.apiKey, this.options.apiSecret, {
      identity: answer.participantIdentity,
      name: answer.participantName,
      metadata: answer.participantMetadata,
      attributes: { ...answer.participantAttributes, [AGENT_NAME_ATTRIBUTE]: worker.agentName },
      ttl: AGENT_TOKEN_TTL_S,
    });
    token.kind = 'agent';
    token.addGrant({
      roomJoin: true,
      room,
      agent: true,
      canPublish: worker.permissions.canPublish,
      canSubscribe: worker.permissions.canSubscribe,
      canPublishData: worker.permissions.canPublishData,
      canUpdateOwnMetadata: worker.permissions.canUpdateMetadata,
      hidden: worker.permissions.hidden,
    });
    return token.toJwt();
  }

  private updateJob(worker: RegisteredWorker, jobId: string, status: JobStatus, error: string): void {
    const record = this.jobsById.get(jobId);
    if (!worker.jobs.has(jobId) || !record) return; // livekit-server only logs updates for unknown jobs
    record.status = JobStatus[status] as JobStatusEvent['status'];
    record.error = error;
    const state = worker.jobs.get(jobId)?.state;
    if (state) {
      state.status = status;
      state.error = error;
      state.updatedAt = BigInt(this.options.clock.now()) * NS_PER_MS;
      if (status === JobStatus.JS_SUCCESS || status === JobStatus.JS_FAILED) state.endedAt = state.updatedAt;
    }
    const ended = status === JobStatus.JS_SUCCESS || status === JobStatus.JS_FAILED;
    if (ended) worker.jobs.delete(jobId);
    this.options.events.emit('job_status', { jobId, room: record.room, status: record.status, error, at: this.options.clock.now() });
    if (ended) this.agentLeaves(jobId);
  }

  private terminateDispatch(dispatchId: string): void {
    for (const jobId of this.jobIdsByDispatch.get(dispatchId) ?? []) {
      const record = this.jobsById.get(jobId);
      const worker = record ? this.workers.get(record.workerId) : undefined;
      if (!worker?.jobs.has(jobId)) continue;
      send(worker.socket, { case: 'termination', value: new JobTermination({ jobId }) });
      this.updateJob(worker, jobId, JobStatus.JS_SUCCESS, '');
    }
  }

  /** Closes every worker connection; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.delayedJoins) clearTimeout(timer);
    this.delayedJoins.clear();
    for (const worker of this.workers.values()) worker.socket.terminate();
    this.wss.close();
  }
}

function send(ws: WebSocket, message: ServerMessage['message']): void {
  if (ws.readyState === ws.OPEN) ws.send(new ServerMessage({ message }).toBinary());
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
