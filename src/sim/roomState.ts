/** Rooms, their participants and agent dispatches, plus their LiveKit protobuf views. */
import {
  AgentDispatch,
  AgentDispatchState,
  Job,
  ParticipantInfo,
  ParticipantInfo_Kind,
  ParticipantInfo_State,
  Room,
} from '@livekit/protocol';
import type { Clock } from '../core/time.js';
import type { ParticipantKindName, SimEvents } from './events.js';
import { ID_PREFIX, newId } from './ids.js';
import type { DisconnectReasonName } from './twirpErrors.js';

/** LiveKit's room defaults (config `room.empty_timeout`, `room.departure_timeout`), reported in Room JSON. */
export const DEFAULT_EMPTY_TIMEOUT_SECONDS = 300;
export const DEFAULT_DEPARTURE_TIMEOUT_SECONDS = 20;
const MS_PER_SECOND = 1000;
const NS_PER_MS = 1_000_000n;

export interface SimParticipant {
  sid: string;
  identity: string;
  name: string;
  metadata: string;
  attributes: Record<string, string>;
  kind: ParticipantKindName;
  joinedAtMs: number;
}

export interface SimDispatch {
  id: string;
  agentName: string;
  room: string;
  metadata: string;
  createdAtMs: number;
  deletedAtMs: number | undefined;
  /** Jobs agent workers took for it (AgentDispatchState.jobs). */
  jobs: Job[];
}

interface SimRoomData {
  sid: string;
  name: string;
  metadata: string;
  createdAtMs: number;
  emptyTimeout: number;
  departureTimeout: number;
  maxParticipants: number;
  participants: Map<string, SimParticipant>;
  dispatches: Map<string, SimDispatch>;
}

/** Read-only snapshots handed to inspection callers. */
export interface RoomSnapshot {
  sid: string;
  name: string;
  metadata: string;
  createdAtMs: number;
  participants: SimParticipant[];
  dispatches: SimDispatch[];
}

/** Told when a participant leaves its room (or moves: `movedTo` is set and the participant lives on). */
export type LeaveHook = (room: string, participant: SimParticipant, reason: DisconnectReasonName, movedTo?: string) => void;

export interface RoomSettings {
  metadata?: string;
  emptyTimeout?: number;
  departureTimeout?: number;
  maxParticipants?: number;
}

const KIND_TO_PROTO: Readonly<Record<ParticipantKindName, ParticipantInfo_Kind>> = {
  STANDARD: ParticipantInfo_Kind.STANDARD,
  SIP: ParticipantInfo_Kind.SIP,
  AGENT: ParticipantInfo_Kind.AGENT,
};

function copyParticipant(p: SimParticipant): SimParticipant {
  return { ...p, attributes: { ...p.attributes } };
}

export class RoomState {
  private readonly rooms = new Map<string, SimRoomData>();
  private readonly leaveHooks: LeaveHook[] = [];
  /** Every dispatch ever created, including those of deleted rooms. */
  readonly dispatchLog: SimDispatch[] = [];
  readonly deletedRooms: string[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly events: SimEvents,
  ) {}

  onLeave(hook: LeaveHook): void {
    this.leaveHooks.push(hook);
  }

  has(name: string): boolean {
    return this.rooms.has(name);
  }

  /** Returns the room, creating it (like LiveKit's auto-create) when absent. */
  ensureRoom(name: string, settings: RoomSettings = {}): SimRoomData {
    const existing = this.rooms.get(name);
    if (existing) return existing;
    const room: SimRoomData = {
      sid: newId(ID_PREFIX.room),
      name,
      metadata: settings.metadata ?? '',
      createdAtMs: this.clock.now(),
      emptyTimeout: settings.emptyTimeout || DEFAULT_EMPTY_TIMEOUT_SECONDS,
      departureTimeout: settings.departureTimeout || DEFAULT_DEPARTURE_TIMEOUT_SECONDS,
      maxParticipants: settings.maxParticipants ?? 0,
      participants: new Map(),
      dispatches: new Map(),
    };
    this.rooms.set(name, room);
    this.events.emit('room_created', { room: name, sid: room.sid, at: this.clock.now() });
    return room;
  }

  /** Deletes a room: every participant leaves with ROOM_DELETED. False when there was no such room. */
  deleteRoom(name: string): boolean {
    const room = this.rooms.get(name);
    if (!room) return false;
    const identities = [...room.participants.keys()];
    for (const identity of identities) this.removeParticipant(name, identity, 'ROOM_DELETED');
    const now = this.clock.now();
    for (const dispatch of room.dispatches.values()) dispatch.deletedAtMs = now;
    this.rooms.delete(name);
    this.deletedRooms.push(name);
    this.events.emit('room_deleted', { room: name, participants: identities, at: now });
    return true;
  }

  /** Adds a participant; an existing one with the same identity is kicked with DUPLICATE_IDENTITY, as LiveKit does. */
  addParticipant(
    roomName: string,
    init: { identity: string; name?: string; metadata?: string; attributes?: Record<string, string>; kind: ParticipantKindName },
  ): SimParticipant {
    const room = this.ensureRoom(roomName);
    if (room.participants.has(init.identity)) this.removeParticipant(roomName, init.identity, 'DUPLICATE_IDENTITY');
    const participant: SimParticipant = {
      sid: newId(ID_PREFIX.participant),
      identity: init.identity,
      name: init.name ?? '',
      metadata: init.metadata ?? '',
      attributes: { ...(init.attributes ?? {}) },
      kind: init.kind,
      joinedAtMs: this.clock.now(),
    };
    room.participants.set(participant.identity, participant);
    this.events.emit('participant_joined', {
      room: roomName,
      identity: participant.identity,
      kind: participant.kind,
      at: this.clock.now(),
    });
    return participant;
  }

  getParticipant(roomName: string, identity: string): SimParticipant | undefined {
    return this.rooms.get(roomName)?.participants.get(identity);
  }

  /** Removes a participant, telling the leave hooks; false when it was not there. */
  removeParticipant(roomName: string, identity: string, reason: DisconnectReasonName): boolean {
    const room = this.rooms.get(roomName);
    const participant = room?.participants.get(identity);
    if (!room || !participant) return false;
    room.participants.delete(identity);
    for (const hook of this.leaveHooks) hook(roomName, participant, reason);
    this.events.emit('participant_left', {
      room: roomName,
      identity,
      kind: participant.kind,
      reason,
      at: this.clock.now(),
    });
    return true;
  }

  /** Moves a participant to another room (created if needed); its call, if any, carries on there. */
  moveParticipant(roomName: string, identity: string, destinationRoom: string): boolean {
    const room = this.rooms.get(roomName);
    const participant = room?.participants.get(identity);
    if (!room || !participant) return false;
    room.participants.delete(identity);
    for (const hook of this.leaveHooks) hook(roomName, participant, 'UNKNOWN_REASON', destinationRoom);
    this.events.emit('participant_left', {
      room: roomName,
      identity,
      kind: participant.kind,
      reason: 'UNKNOWN_REASON',
      at: this.clock.now(),
    });
    const destination = this.ensureRoom(destinationRoom);
    if (destination.participants.has(identity)) this.removeParticipant(destinationRoom, identity, 'DUPLICATE_IDENTITY');
    destination.participants.set(identity, participant);
    this.events.emit('participant_joined', {
      room: destinationRoom,
      identity,
      kind: participant.kind,
      at: this.clock.now(),
    });
    return true;
  }

  /** LiveKit's attribute update: keys with an empty value are deleted, others set. */
  updateAttributes(participant: SimParticipant, attributes: Record<string, string>): void {
    for (const [key, value] of Object.entries(attributes)) {
      if (value === '') delete participant.attributes[key];
      else participant.attributes[key] = value;
    }
  }

  addDispatch(roomName: string, agentName: string, metadata: string): SimDispatch {
    const room = this.ensureRoom(roomName);
    const dispatch: SimDispatch = {
      id: newId(ID_PREFIX.agentDispatch),
      agentName,
      room: roomName,
      metadata,
      createdAtMs: this.clock.now(),
      deletedAtMs: undefined,
      jobs: [],
    };
    room.dispatches.set(dispatch.id, dispatch);
    this.dispatchLog.push(dispatch);
    this.events.emit('dispatch_created', {
      room: roomName,
      agentName,
      metadata,
      dispatchId: dispatch.id,
      at: this.clock.now(),
    });
    return dispatch;
  }

  listDispatches(roomName: string): SimDispatch[] | undefined {
    const room = this.rooms.get(roomName);
    return room ? [...room.dispatches.values()] : undefined;
  }

  deleteDispatch(roomName: string, dispatchId: string): SimDispatch | undefined {
    const room = this.rooms.get(roomName);
    const dispatch = room?.dispatches.get(dispatchId);
    if (!room || !dispatch) return undefined;
    room.dispatches.delete(dispatchId);
    dispatch.deletedAtMs = this.clock.now();
    this.events.emit('dispatch_deleted', { room: roomName, dispatchId, at: this.clock.now() });
    return dispatch;
  }

  roomNames(): string[] {
    return [...this.rooms.keys()];
  }

  participants(roomName: string): SimParticipant[] {
    const room = this.rooms.get(roomName);
    return room ? [...room.participants.values()].map(copyParticipant) : [];
  }

  snapshot(): RoomSnapshot[] {
    return [...this.rooms.values()].map((room) => ({
      sid: room.sid,
      name: room.name,
      metadata: room.metadata,
      createdAtMs: room.createdAtMs,
      participants: [...room.participants.values()].map(copyParticipant),
      dispatches: [...room.dispatches.values()].map((d) => ({ ...d, jobs: [...d.jobs] })),
    }));
  }

  /** Removes every room without events (sim shutdown). */
  clear(): void {
    this.rooms.clear();
  }

  roomProto(name: string): Room | undefined {
    const room = this.rooms.get(name);
    if (!room) return undefined;
    const publishers = [...room.participants.values()].filter((p) => p.kind === 'SIP' || p.kind === 'AGENT').length;
    return new Room({
      sid: room.sid,
      name: room.name,
      emptyTimeout: room.emptyTimeout,
      departureTimeout: room.departureTimeout,
      maxParticipants: room.maxParticipants,
      creationTime: BigInt(Math.floor(room.createdAtMs / MS_PER_SECOND)),
      creationTimeMs: BigInt(room.createdAtMs),
      metadata: room.metadata,
      numParticipants: room.participants.size,
      numPublishers: publishers,
    });
  }
}

export function participantProto(p: SimParticipant): ParticipantInfo {
  return new ParticipantInfo({
    sid: p.sid,
    identity: p.identity,
    name: p.name,
    metadata: p.metadata,
    attributes: { ...p.attributes },
    state: ParticipantInfo_State.ACTIVE,
    kind: KIND_TO_PROTO[p.kind],
    joinedAt: BigInt(Math.floor(p.joinedAtMs / MS_PER_SECOND)),
    joinedAtMs: BigInt(p.joinedAtMs),
    isPublisher: p.kind === 'SIP' || p.kind === 'AGENT',
  });
}

export function dispatchProto(d: SimDispatch): AgentDispatch {
  return new AgentDispatch({
    id: d.id,
    agentName: d.agentName,
    room: d.room,
    metadata: d.metadata,
    state: new AgentDispatchState({
      createdAt: BigInt(d.createdAtMs) * NS_PER_MS,
      deletedAt: d.deletedAtMs === undefined ? 0n : BigInt(d.deletedAtMs) * NS_PER_MS,
      jobs: d.jobs,
    }),
  });
}
