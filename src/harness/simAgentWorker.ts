/**
 * An agent worker on the simulator's `/agent` socket, speaking LiveKit's agent-worker protocol as agents-js' Worker
 * does (node_modules/@livekit/agents src/worker.ts, src/job.ts): `register` with the agent name (JT_ROOM), then for
 * each offered job an `availability` answer that accepts it as identity `agent-<job id>` (JobRequest.accept's
 * default) with `lk.agent.name` stamped on its attributes, and `updateWorker {status: WS_FULL}` while the host is at
 * its load threshold (0.7 in production), which livekit-server answers by offering it nothing. Accepting the job is
 * what makes the agent's participant appear in the room (src/sim/agentWorkers.ts), so a dispatch that no worker
 * takes leaves the room without one, as on a real server.
 *
 * One difference from agents-js 1.9, which never sends `updateJob`: a job that ends here sends `updateJob` with
 * JS_SUCCESS, standing in for the agent leaving the room (the sim has no room connection to close).
 */
import {
  AvailabilityResponse,
  JobStatus,
  JobType,
  RegisterWorkerRequest,
  ServerMessage,
  UpdateJobStatus,
  UpdateWorkerStatus,
  WorkerMessage,
  WorkerStatus,
} from '@livekit/protocol';
import { AccessToken } from 'livekit-server-sdk';
import WebSocket, { type RawData } from 'ws';
import { SECOND } from '../core/time.js';

/** agents-js `JobRequest.accept`: the participant identity of a job's agent when the worker names none. */
export const AGENT_IDENTITY_PREFIX = 'agent-';
/** The attribute agents-js stamps on its participant (ATTRIBUTE_AGENT_NAME). */
const AGENT_NAME_ATTRIBUTE = 'lk.agent.name';
/** The load agents-js reports with WS_FULL when it marks itself unavailable (src/worker.ts, when draining). */
const FULL_LOAD = 1;
const REGISTER_TIMEOUT_MS = 10 * SECOND;
const WORKER_VERSION = '1.9.0-harness';
const WORKER_TOKEN_TTL_S = 60 * 60;

/** A job the worker was assigned: the room to serve and the identity its agent has there. */
export interface AssignedSimJob {
  id: string;
  dispatchId: string;
  room: string;
  metadata: string;
  participantIdentity: string;
}

export interface SimAgentWorkerOptions {
  /** The simulator's URL (http://127.0.0.1:<port>). */
  url: string;
  apiKey: string;
  apiSecret: string;
  agentName: string;
  /** Whether to take a job offered for `room` (default: every one); a job refused goes to another worker, if any. */
  accept?: (offer: { jobId: string; dispatchId: string; room: string }) => boolean;
  /** Told of each job assigned to this worker. */
  onJob?: (job: AssignedSimJob) => void;
  /** Told of each job the server ends (its dispatch was deleted). */
  onTermination?: (jobId: string) => void;
  /** Register at full load: the worker is offered nothing until `setFull(false)`. */
  full?: boolean;
}

export interface SimAgentWorker {
  readonly id: string;
  /** The identity this worker's agent takes for a job, as agents-js names it. */
  identityFor(jobId: string): string;
  /** Whether `identity` is the agent of a job this worker accepted (its own participant, not a remote one). */
  ownsIdentity(identity: string): boolean;
  /** Reports the host at (true) or below (false) its load threshold. */
  setFull(full: boolean): void;
  /** The job ended: its agent leaves the room. */
  jobEnded(jobId: string, error?: string): void;
  /** Closes the socket (the sim removes the worker and its jobs' agents). Idempotent. */
  close(): Promise<void>;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Connects and registers an agent worker on the simulator; resolves once the server has answered `register`. */
export async function connectSimAgentWorker(options: SimAgentWorkerOptions): Promise<SimAgentWorker> {
  const token = new AccessToken(options.apiKey, options.apiSecret, { ttl: WORKER_TOKEN_TTL_S });
  token.addGrant({ agent: true });
  const ws = new WebSocket(`${options.url.replace(/^http/, 'ws')}/agent`, { headers: { authorization: `Bearer ${await token.toJwt()}` } });
  const send = (message: WorkerMessage['message']): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(new WorkerMessage({ message }).toBinary());
  };
  const identityFor = (jobId: string): string => `${AGENT_IDENTITY_PREFIX}${jobId}`;
  /** Identities of the jobs accepted, noted before the server hears the answer (so before the agent joins). */
  const own = new Set<string>();
  const setFull = (full: boolean): void =>
    send({ case: 'updateWorker', value: new UpdateWorkerStatus({ status: full ? WorkerStatus.WS_FULL : WorkerStatus.WS_AVAILABLE, load: full ? FULL_LOAD : 0 }) });

  const workerId = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`the simulator did not answer the worker's registration within ${REGISTER_TIMEOUT_MS} ms`));
    }, REGISTER_TIMEOUT_MS);
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.once('open', () => {
      send({ case: 'register', value: new RegisterWorkerRequest({ type: JobType.JT_ROOM, agentName: options.agentName, version: WORKER_VERSION }) });
    });
    ws.on('message', (data: RawData) => {
      const message = ServerMessage.fromBinary(toBuffer(data)).message;
      switch (message.case) {
        case 'register':
          clearTimeout(timer);
          if (options.full) setFull(true);
          resolve(message.value.workerId);
          break;
        case 'availability': {
          const offered = message.value.job;
          const jobId = offered?.id ?? '';
          const take = options.accept?.({ jobId, dispatchId: offered?.dispatchId ?? '', room: offered?.room?.name ?? '' }) ?? true;
          if (!take) {
            send({ case: 'availability', value: new AvailabilityResponse({ jobId, available: false }) });
            break;
          }
          own.add(identityFor(jobId));
          send({
            case: 'availability',
            value: new AvailabilityResponse({
              jobId,
              available: true,
              participantIdentity: identityFor(jobId),
              participantAttributes: { [AGENT_NAME_ATTRIBUTE]: options.agentName },
            }),
          });
          break;
        }
        case 'assignment': {
          const job = message.value.job;
          if (!job) break;
          options.onJob?.({
            id: job.id,
            dispatchId: job.dispatchId,
            room: job.room?.name ?? '',
            metadata: job.metadata,
            participantIdentity: job.state?.participantIdentity || identityFor(job.id),
          });
          break;
        }
        case 'termination':
          options.onTermination?.(message.value.jobId);
          break;
        default:
          break;
      }
    });
  });
  ws.on('error', () => ws.terminate());

  let closing: Promise<void> | undefined;
  return {
    id: workerId,
    identityFor,
    ownsIdentity: (identity) => own.has(identity),
    setFull,
    jobEnded(jobId, error = '') {
      own.delete(identityFor(jobId));
      send({ case: 'updateJob', value: new UpdateJobStatus({ jobId, status: error ? JobStatus.JS_FAILED : JobStatus.JS_SUCCESS, error }) });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      });
      return closing;
    },
  };
}

/**
 * An agent host that accepts every job for its name and does nothing in the room (a stand-in agent that joins and
 * stays): for tests of the dial pipeline that need an agent present but no conversation. `full` makes it a host at
 * its load threshold that takes nothing.
 */
export function startStandInAgent(options: Omit<SimAgentWorkerOptions, 'onJob' | 'onTermination'>): Promise<SimAgentWorker> {
  return connectSimAgentWorker(options);
}
