/**
 * A LiveKit room and job without RTC: FakeRoom emits rtc-node's RoomEvent names with rtc-node's arguments (and
 * updates `remoteParticipants` and attributes before emitting, as rtc-node does); FakeJob is the part of
 * agents-js' JobContext runCall uses, and `runJob` ends it in the order agents-js' job process does.
 */
import { EventEmitter } from 'node:events';
import { DisconnectReason, ParticipantKind, RoomEvent } from '@livekit/rtc-node';
import type { voice } from '@livekit/agents';
import type { CallJobContext, CallRoom } from '../../src/agent/entry.js';
import type { RoomParticipant } from '../../src/agent/roomLifecycle.js';
import type { DisconnectReasonName, LiveKitSim, ParticipantKindName } from '../../src/sim/index.js';

export class FakeParticipant implements RoomParticipant {
  /** Set when it leaves, as rtc-node sets it from the ParticipantDisconnected event (undefined for UNKNOWN_REASON). */
  disconnectReason: DisconnectReason | undefined;

  constructor(
    readonly identity: string,
    readonly kind: ParticipantKind,
    public attributes: Record<string, string>,
  ) {}
}

const ROOM_EVENTS = [
  RoomEvent.ParticipantConnected,
  RoomEvent.ParticipantDisconnected,
  RoomEvent.ParticipantAttributesChanged,
  RoomEvent.DtmfReceived,
  RoomEvent.Disconnected,
] as const;

export class FakeRoom extends EventEmitter implements CallRoom {
  readonly remoteParticipants = new Map<string, FakeParticipant>();
  closed = false;

  constructor(readonly name: string | undefined) {
    super();
  }

  /** A participant joins (rtc-node: added to remoteParticipants, then ParticipantConnected). */
  join(identity: string, attributes: Record<string, string> = {}, kind: ParticipantKind = ParticipantKind.SIP): FakeParticipant {
    const participant = new FakeParticipant(identity, kind, { ...attributes });
    this.remoteParticipants.set(identity, participant);
    this.emit(RoomEvent.ParticipantConnected, participant);
    return participant;
  }

  /** rtc-node: the participant's attributes are replaced, then (changed, participant). */
  setAttributes(identity: string, changed: Record<string, string>): void {
    const participant = this.remoteParticipants.get(identity);
    if (!participant) throw new Error(`no participant ${identity}`);
    participant.attributes = { ...participant.attributes, ...changed };
    this.emit(RoomEvent.ParticipantAttributesChanged, changed, participant);
  }

  /** rtc-node: removed from remoteParticipants, its disconnect reason set, then ParticipantDisconnected. */
  leave(identity: string, reason?: DisconnectReason): void {
    const participant = this.remoteParticipants.get(identity);
    if (!participant) return;
    this.remoteParticipants.delete(identity);
    participant.disconnectReason = reason === DisconnectReason.UNKNOWN_REASON ? undefined : reason;
    this.emit(RoomEvent.ParticipantDisconnected, participant);
  }

  /** A SIP DTMF packet: (code, digit, participant). */
  dtmf(identity: string, digit: string): void {
    const participant = this.remoteParticipants.get(identity);
    if (!participant) throw new Error(`no participant ${identity}`);
    const code = digit === '*' ? 10 : digit === '#' ? 11 : Number(digit);
    this.emit(RoomEvent.DtmfReceived, code, digit, participant);
  }

  /** The room connection ends (room deleted, or the agent disconnecting itself: CLIENT_INITIATED). Once. */
  close(reason: DisconnectReason = DisconnectReason.ROOM_DELETED): void {
    if (this.closed) return;
    this.closed = true;
    this.emit(RoomEvent.Disconnected, reason);
  }

  /** Listeners on the events the call lifecycle uses (0 once every wait has settled). */
  lifecycleListeners(): number {
    return ROOM_EVENTS.reduce((sum, event) => sum + this.listenerCount(event), 0);
  }
}

const SIM_KINDS: Record<ParticipantKindName, ParticipantKind> = {
  STANDARD: ParticipantKind.STANDARD,
  SIP: ParticipantKind.SIP,
  AGENT: ParticipantKind.AGENT,
};

/**
 * A FakeRoom that follows a simulator room the way an agent connected to it would see it: SIP participants joining
 * (`dialing`), `sip.callStatus` going to ringing and active, participants leaving, and the room being deleted.
 */
export function mirrorSimRoom(sim: LiveKitSim, name: string): { room: FakeRoom; stop(): void } {
  const room = new FakeRoom(name);
  const onJoined = (ev: { room: string; identity: string; kind: ParticipantKindName }) => {
    if (ev.room !== name) return;
    const attributes = sim.participants(name).find((p) => p.identity === ev.identity)?.attributes ?? {};
    room.join(ev.identity, attributes, SIM_KINDS[ev.kind]);
  };
  const status = (callStatus: string) => (ev: { room: string; identity: string }) => {
    if (ev.room === name && room.remoteParticipants.has(ev.identity)) room.setAttributes(ev.identity, { 'sip.callStatus': callStatus });
  };
  const onRinging = status('ringing');
  const onAnswered = status('active');
  const onLeft = (ev: { room: string; identity: string; reason: DisconnectReasonName }) => {
    if (ev.room === name) room.leave(ev.identity, DisconnectReason[ev.reason]);
  };
  const onDeleted = (ev: { room: string }) => {
    if (ev.room === name) room.close(DisconnectReason.ROOM_DELETED);
  };
  sim.events.on('participant_joined', onJoined);
  sim.events.on('call_ringing', onRinging);
  sim.events.on('call_answered', onAnswered);
  sim.events.on('participant_left', onLeft);
  sim.events.on('room_deleted', onDeleted);
  return {
    room,
    stop() {
      sim.events.off('participant_joined', onJoined);
      sim.events.off('call_ringing', onRinging);
      sim.events.off('call_answered', onAnswered);
      sim.events.off('participant_left', onLeft);
      sim.events.off('room_deleted', onDeleted);
    },
  };
}

export interface FakeJobInput {
  id?: string;
  metadata: string;
  roomMetadata?: string;
  room: FakeRoom;
  /** connect() rejects with this. */
  connectError?: Error;
}

/** The part of JobContext runCall uses, recording what the call did with it. */
export class FakeJob implements CallJobContext<FakeRoom> {
  readonly job: { id: string; metadata: string; room?: { name: string; metadata: string } };
  readonly room: FakeRoom;
  readonly shutdownCallbacks: (() => Promise<void>)[] = [];
  readonly shutdownReasons: string[] = [];
  /** The sessions the call opened (agents-js closes the job's primary session when the job ends). */
  readonly sessions: voice.AgentSession[] = [];
  connects = 0;
  private readonly connectError: Error | undefined;
  private closeRequested: (reason: string) => void = () => undefined;
  /** Resolves with the reason when the job is told to end (by the call, or by the framework). */
  readonly closing: Promise<string>;

  constructor(input: FakeJobInput) {
    this.room = input.room;
    this.job = {
      id: input.id ?? 'AJ_test',
      metadata: input.metadata,
      room: input.room.name === undefined ? undefined : { name: input.room.name, metadata: input.roomMetadata ?? '' },
    };
    this.connectError = input.connectError;
    this.closing = new Promise((resolve) => {
      this.closeRequested = resolve;
    });
  }

  async connect(): Promise<void> {
    this.connects += 1;
    if (this.connectError) throw this.connectError;
  }

  addShutdownCallback(callback: () => Promise<void>): void {
    this.shutdownCallbacks.push(callback);
  }

  shutdown(reason = ''): void {
    this.shutdownReasons.push(reason);
    this.closeRequested(reason);
  }

  /** The framework ends the job from outside (worker shutting down, job killed). */
  requestClose(reason: string): void {
    this.closeRequested(reason);
  }
}

export interface JobRun {
  /** The call's own promise (settles when runCall returns). */
  entry: Promise<void>;
  /** Resolves once the job has ended the way agents-js ends it. */
  ended: Promise<{ closeReason: string; entryDone: boolean }>;
}

/**
 * Runs `entry` as agents-js' job process does (job_proc_lazy_main.ts): when the job is told to end (ctx.shutdown,
 * the framework, or the entry crashing) it waits for the entry (at most `entryWaitMs`; agents-js waits 15 s),
 * closes the primary session, disconnects from the room (Disconnected, CLIENT_INITIATED), then runs every shutdown
 * callback.
 */
export function runJob(job: FakeJob, entry: Promise<void>, entryWaitMs = 2000): JobRun {
  let entryDone = false;
  const tracked = entry.finally(() => {
    entryDone = true;
  });
  const crashed = tracked.then(
    () => new Promise<string>(() => undefined),
    () => 'job crashed',
  );
  const ended = (async () => {
    const closeReason = await Promise.race([job.closing, crashed]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      tracked.catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, entryWaitMs);
      }),
    ]);
    clearTimeout(timer);
    await Promise.all(job.sessions.map((s) => s.close().catch(() => undefined)));
    job.room.close(DisconnectReason.CLIENT_INITIATED);
    await Promise.allSettled(job.shutdownCallbacks.map((callback) => Promise.resolve().then(callback)));
    return { closeReason, entryDone };
  })();
  return { entry: tracked, ended };
}
