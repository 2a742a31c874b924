/**
 * A simulator room as an agent connected to it would see it (rtc-node's `Room`, as far as runCall uses it): built
 * from the simulator's events. Participants join and leave (with their DisconnectReason), a SIP participant carries
 * `sip.callStatus` and `sip.phoneNumber` (dialing, ringing, active), and the room's deletion ends the connection.
 * Like rtc-node, it updates `remoteParticipants` and attributes before it emits the event.
 */
import { EventEmitter } from 'node:events';
import { DisconnectReason, ParticipantKind, RoomEvent } from '@livekit/rtc-node';
import type { CallRoom } from '../agent/entry.js';
import type { RoomParticipant } from '../agent/roomLifecycle.js';
import { SIP_ATTR, type SipCallStatus } from '../core/sipAttributes.js';
import type {
  CallAnsweredEvent,
  CallEventBase,
  ParticipantJoinedEvent,
  ParticipantKindName,
  ParticipantLeftEvent,
  RoomDeletedEvent,
  SimEventName,
  SimEventPayload,
  SimEvents,
} from '../sim/index.js';

const KINDS: Record<ParticipantKindName, ParticipantKind> = {
  STANDARD: ParticipantKind.STANDARD,
  SIP: ParticipantKind.SIP,
  AGENT: ParticipantKind.AGENT,
};

export class SimRoomParticipant implements RoomParticipant {
  /** Set when it leaves, as rtc-node sets it from the ParticipantDisconnected event (undefined for UNKNOWN_REASON). */
  disconnectReason: DisconnectReason | undefined;

  constructor(
    readonly identity: string,
    readonly kind: ParticipantKind,
    public attributes: Record<string, string>,
  ) {}
}

/**
 * One simulator room, followed from the moment it is built (the harness builds it when the agent is dispatched, which
 * comes before any call into the room). A SIP participant shows once its call says who it is (the simulator emits
 * `participant_joined`, then `call_dialing` or, for an inbound caller, `call_answered`), so it joins with its SIP
 * attributes as LiveKit's does. `close()` stops following (idempotent).
 */
export class SimRoom extends EventEmitter implements CallRoom {
  readonly remoteParticipants = new Map<string, SimRoomParticipant>();
  private connected = true;
  /** SIP participants in the room whose call has not said who they are yet. */
  private readonly joining = new Set<string>();
  private readonly stops: (() => void)[] = [];

  /**
   * @param isLocal whether an identity is this agent's own participant, which rtc-node never lists among the remote
   *   participants (the simulator shows the agent's participant in the room once its job is accepted).
   */
  constructor(
    readonly name: string,
    private readonly events: SimEvents,
    isLocal: (identity: string) => boolean = () => false,
  ) {
    super();
    const onJoined = (ev: ParticipantJoinedEvent) => {
      if (ev.room !== name || isLocal(ev.identity)) return;
      if (ev.kind === 'SIP') this.joining.add(ev.identity);
      else this.join(ev.identity, KINDS[ev.kind], {});
    };
    const status = (callStatus: SipCallStatus) => (ev: CallEventBase | CallAnsweredEvent) => {
      if (ev.room !== name) return;
      const attributes = { [SIP_ATTR.callStatus]: callStatus, [SIP_ATTR.phoneNumber]: ev.phoneNumber };
      if (this.joining.delete(ev.identity)) this.join(ev.identity, ParticipantKind.SIP, attributes);
      else if (this.remoteParticipants.has(ev.identity)) this.setAttributes(ev.identity, { [SIP_ATTR.callStatus]: callStatus });
    };
    const onLeft = (ev: ParticipantLeftEvent) => {
      if (ev.room !== name) return;
      this.joining.delete(ev.identity);
      this.leave(ev.identity, DisconnectReason[ev.reason]);
    };
    const onDeleted = (ev: RoomDeletedEvent) => {
      if (ev.room === name) this.disconnect(DisconnectReason.ROOM_DELETED);
    };
    this.follow('participant_joined', onJoined);
    this.follow('call_dialing', status('dialing'));
    this.follow('call_ringing', status('ringing'));
    this.follow('call_answered', status('active'));
    this.follow('participant_left', onLeft);
    this.follow('room_deleted', onDeleted);
  }

  private follow<K extends SimEventName>(event: K, listener: (payload: SimEventPayload<K>) => void): void {
    // Through the untyped view: TS cannot resolve the typed overloads for a generic event name.
    const emitter: EventEmitter = this.events;
    emitter.on(event, listener);
    this.stops.push(() => emitter.off(event, listener));
  }

  private join(identity: string, kind: ParticipantKind, attributes: Record<string, string>): void {
    if (!this.connected) return;
    const participant = new SimRoomParticipant(identity, kind, attributes);
    this.remoteParticipants.set(identity, participant);
    this.emit(RoomEvent.ParticipantConnected, participant);
  }

  private setAttributes(identity: string, changed: Record<string, string>): void {
    const participant = this.remoteParticipants.get(identity);
    if (!participant || !this.connected) return;
    participant.attributes = { ...participant.attributes, ...changed };
    this.emit(RoomEvent.ParticipantAttributesChanged, changed, participant);
  }

  private leave(identity: string, reason: DisconnectReason): void {
    const participant = this.remoteParticipants.get(identity);
    if (!participant || !this.connected) return;
    this.remoteParticipants.delete(identity);
    participant.disconnectReason = reason === DisconnectReason.UNKNOWN_REASON ? undefined : reason;
    this.emit(RoomEvent.ParticipantDisconnected, participant);
  }

  /** The agent's connection to the room ends (the room was deleted, or the job disconnects: CLIENT_INITIATED). Once. */
  disconnect(reason: DisconnectReason): void {
    if (!this.connected) return;
    this.connected = false;
    this.emit(RoomEvent.Disconnected, reason);
  }

  /** Stops following the simulator (the job is over). */
  close(): void {
    for (const stop of this.stops.splice(0)) stop();
  }
}
