/** What the simulator reports as things happen: a typed EventEmitter others (tests, a callee harness) listen to. */
import { EventEmitter } from 'node:events';
import type { Callee } from './scenarioSchema.js';
import type { DisconnectReasonName, TwirpCode } from './twirpErrors.js';

/** Every event carries `at`, the sim clock's epoch ms. */
interface Timed {
  at: number;
}

export interface DispatchCreatedEvent extends Timed {
  room: string;
  agentName: string;
  metadata: string;
  dispatchId: string;
}

export interface DispatchDeletedEvent extends Timed {
  room: string;
  dispatchId: string;
}

export interface RoomCreatedEvent extends Timed {
  room: string;
  sid: string;
}

export interface RoomDeletedEvent extends Timed {
  room: string;
  /** Identities that were in the room and were removed with it. */
  participants: string[];
}

export type ParticipantKindName = 'STANDARD' | 'SIP' | 'AGENT';

export interface ParticipantJoinedEvent extends Timed {
  room: string;
  identity: string;
  kind: ParticipantKindName;
}

export interface ParticipantLeftEvent extends Timed {
  room: string;
  identity: string;
  kind: ParticipantKindName;
  reason: DisconnectReasonName;
}

/** The call a SIP participant carries. */
export interface CallEventBase extends Timed {
  callId: string;
  room: string;
  identity: string;
  phoneNumber: string;
  trunkId: string;
  /** 1-based count of CreateSIPParticipant requests for this number that reached the phone network. */
  attempt: number;
}

export type CallDialingEvent = CallEventBase;
export type CallRingingEvent = CallEventBase;

export interface CallAnsweredEvent extends CallEventBase {
  /** Who picked up, for a text-mode callee harness. */
  callee: Callee;
}

export interface CallFailedEvent extends CallEventBase {
  sipStatusCode: number | undefined;
  sipStatus: string | undefined;
  twirpCode: TwirpCode;
  httpStatus: number;
  message: string;
  /** ring_out, busy, room_deleted, request_timeout, platform_unavailable… */
  reason: string;
}

export type CallEndReason =
  | 'callee_hangup'
  | 'room_deleted'
  | 'participant_removed'
  | 'transferred'
  | 'max_call_duration'
  | 'sim_closed';

export interface CallEndedEvent extends CallEventBase {
  reason: CallEndReason;
  /** Time from answer to end. */
  durationMs: number;
}

export interface TransferEventBase extends Timed {
  transferId: string;
  room: string;
  identity: string;
  transferTo: string;
  callId: string;
}

export type TransferRequestedEvent = TransferEventBase;
export type TransferCompletedEvent = TransferEventBase;

export interface TransferFailedEvent extends TransferEventBase {
  sipStatusCode: number | undefined;
  sipStatus: string | undefined;
  /** True when the request returned 200 and the failure was silent (participant stays). */
  silent: boolean;
  reason: 'rejected' | 'no_answer' | 'call_ended';
}

export interface WorkerRegisteredEvent extends Timed {
  workerId: string;
  agentName: string;
}

export type WorkerDeregisteredEvent = WorkerRegisteredEvent;

/** A dispatch's job accepted by a worker and assigned to it (with the room token). */
export interface JobAssignedEvent extends Timed {
  id: string;
  dispatchId: string;
  room: string;
  agentName: string;
  workerId: string;
  participantIdentity: string;
}

/** A dispatch no worker took: none registered under its agent name, or all declined or were full. */
export interface JobNotAssignedEvent extends Timed {
  room: string;
  dispatchId: string;
  agentName: string;
  reason: string;
}

export interface JobStatusEvent extends Timed {
  jobId: string;
  room: string;
  status: 'JS_PENDING' | 'JS_RUNNING' | 'JS_SUCCESS' | 'JS_FAILED';
  error: string;
}

/** Event name → listener arguments, for node's typed EventEmitter. */
export interface SimEventMap {
  dispatch_created: [DispatchCreatedEvent];
  dispatch_deleted: [DispatchDeletedEvent];
  room_created: [RoomCreatedEvent];
  room_deleted: [RoomDeletedEvent];
  participant_joined: [ParticipantJoinedEvent];
  participant_left: [ParticipantLeftEvent];
  call_dialing: [CallDialingEvent];
  call_ringing: [CallRingingEvent];
  call_answered: [CallAnsweredEvent];
  call_failed: [CallFailedEvent];
  call_ended: [CallEndedEvent];
  transfer_requested: [TransferRequestedEvent];
  transfer_completed: [TransferCompletedEvent];
  transfer_failed: [TransferFailedEvent];
  worker_registered: [WorkerRegisteredEvent];
  worker_deregistered: [WorkerDeregisteredEvent];
  job_assigned: [JobAssignedEvent];
  job_not_assigned: [JobNotAssignedEvent];
  job_status: [JobStatusEvent];
}

const DEFAULT_WAIT_TIMEOUT_MS = 5000;

export type SimEventName = keyof SimEventMap;
export type SimEventPayload<K extends SimEventName> = SimEventMap[K][0];
export type SimEvents = EventEmitter<SimEventMap>;

/**
 * The simulator's event bus. It has an observer per simulated call by design (the simulated agent's callee and room
 * listen for their own room's events while the call lasts, and remove their listeners when it ends), so Node's
 * warning at 11 listeners of one event, meant to catch a leak, fired for any 11 calls at once (`npm run demo`).
 * The limit is off here; test/agent/simulatedAgent.test.ts checks that the harness leaves no listener behind.
 */
export function createSimEvents(): SimEvents {
  const events = new EventEmitter<SimEventMap>();
  events.setMaxListeners(0);
  return events;
}

/**
 * Resolves with the first `event` whose payload passes `predicate`, or rejects after `timeoutMs`.
 * Lets a test or harness write `await waitForEvent(sim.events, 'call_answered', (e) => e.room === room)`.
 */
export function waitForEvent<K extends SimEventName>(
  events: SimEvents,
  event: K,
  predicate: (payload: SimEventPayload<K>) => boolean = () => true,
  timeoutMs = DEFAULT_WAIT_TIMEOUT_MS,
): Promise<SimEventPayload<K>> {
  // Listen through the untyped view: TS cannot resolve the typed overloads for a generic event name.
  const emitter: EventEmitter = events;
  return new Promise((resolve, reject) => {
    const listener = (payload: SimEventPayload<K>): void => {
      if (!predicate(payload)) return;
      cleanup();
      resolve(payload);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      emitter.off(event, listener);
    };
    emitter.on(event, listener);
  });
}
