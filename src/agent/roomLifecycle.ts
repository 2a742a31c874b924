/**
 * Following the SIP participant through a LiveKit room (the telephony guide's SIP lifecycle): waiting for the
 * consumer-dialed callee to answer, for an inbound caller to join, for someone to leave, and routing the callee's
 * hang-up, `sip.callStatus` and keypad presses to the call. Typed against the few parts of rtc-node's `Room` they
 * use, so a real `Room` fits and tests can drive them with an EventEmitter.
 */
import { DisconnectReason, ParticipantKind, RoomEvent } from '@livekit/rtc-node';
import type { AttemptEndObservation } from '../core/callStore.js';
import type { Logger } from '../core/logger.js';
import { SECOND } from '../core/time.js';
import { SIP_ATTR } from '../core/sipAttributes.js';
import { errorMessage } from '../core/errors.js';

/** What the lifecycle reads of a participant; rtc-node's `Participant` (local or remote) has all of it. */
export interface RoomParticipant {
  readonly identity: string;
  readonly kind: ParticipantKind;
  readonly attributes: Readonly<Record<string, string>>;
  /**
   * Why the participant left, once it has (rtc-node sets it from the ParticipantDisconnected event before emitting
   * it; undefined for UNKNOWN_REASON and while the participant is still there).
   */
  readonly disconnectReason?: DisconnectReason | undefined;
}

/** A participant's DisconnectReason as its livekit_models.proto name (`UNKNOWN_REASON` when the room did not say). */
export function disconnectReasonName(reason: DisconnectReason | undefined): string {
  return reason === undefined ? 'UNKNOWN_REASON' : (DisconnectReason[reason] ?? 'UNKNOWN_REASON');
}

/**
 * The part of rtc-node's `Room` the call lifecycle uses: its remote participants and five events, with rtc-node's
 * listener arguments (`ParticipantAttributesChanged` may name any participant, the others a remote one).
 * rtc-node updates `remoteParticipants` (and a participant's attributes) before it emits the event.
 */
export interface LifecycleRoom<P extends RoomParticipant = RoomParticipant> {
  readonly remoteParticipants: ReadonlyMap<string, P>;
  on(event: RoomEvent.ParticipantConnected, listener: (participant: P) => void): unknown;
  on(event: RoomEvent.ParticipantDisconnected, listener: (participant: P) => void): unknown;
  on(
    event: RoomEvent.ParticipantAttributesChanged,
    listener: (changed: Record<string, string>, participant: RoomParticipant) => void,
  ): unknown;
  on(event: RoomEvent.DtmfReceived, listener: (code: number, digit: string, participant: P) => void): unknown;
  on(event: RoomEvent.Disconnected, listener: (reason: DisconnectReason) => void): unknown;
  off(event: RoomEvent.ParticipantConnected, listener: (participant: P) => void): unknown;
  off(event: RoomEvent.ParticipantDisconnected, listener: (participant: P) => void): unknown;
  off(
    event: RoomEvent.ParticipantAttributesChanged,
    listener: (changed: Record<string, string>, participant: RoomParticipant) => void,
  ): unknown;
  off(event: RoomEvent.DtmfReceived, listener: (code: number, digit: string, participant: P) => void): unknown;
  off(event: RoomEvent.Disconnected, listener: (reason: DisconnectReason) => void): unknown;
}

/**
 * How waiting for the consumer's callee ended. `room_deleted`: LiveKit deleted the room (Disconnected with
 * ROOM_DELETED); `closed`: the agent left it otherwise (its job shutting down), while the call may still ring there.
 */
export type AnswerWait = 'answered' | 'gone' | 'closed' | 'room_deleted' | 'timeout';

/**
 * After `sip.callStatus` turns `hangup` before the answer, how long to wait for the participant to leave, so its
 * DisconnectReason (why the call failed) can be observed; the call counts as gone either way.
 */
export const HANGUP_LEAVE_GRACE_MS = SECOND;

/**
 * Waits until the consumer-dialed SIP participant is in the room with `sip.callStatus` = active (answered),
 * leaves or reaches `hangup` (`gone`: the call failed, the consumer reports it), the agent's room connection ends
 * (`closed`: the room was deleted, or the agent left it, e.g. its job shutting down, while the call may still be
 * ringing), or the time is up. When the result is `gone`, `observe` is called first with what the room showed of
 * the participant's end: its DisconnectReason (waiting up to HANGUP_LEAVE_GRACE_MS after a `hangup` status for it
 * to leave) and its last `sip.callStatus`.
 */
export function waitForSipAnswer(
  room: LifecycleRoom,
  identity: string,
  timeoutMs: number,
  observe: (seen: AttemptEndObservation) => void = () => undefined,
): Promise<AnswerWait> {
  return new Promise((resolve) => {
    const isAnswered = (p: RoomParticipant | undefined) => p?.attributes[SIP_ATTR.callStatus] === 'active';
    let lastCallStatus: string | undefined;
    let rang = false;
    /** When the callee's call ended, as the room showed it (a `hangup` status, or the participant leaving). */
    let endedAt: number | undefined;
    let hangupGrace: NodeJS.Timeout | undefined;
    const noteStatus = (p: RoomParticipant) => {
      lastCallStatus = p.attributes[SIP_ATTR.callStatus] ?? lastCallStatus;
      if (lastCallStatus === 'ringing') rang = true;
      if (lastCallStatus === 'hangup') endedAt ??= Date.now();
    };
    const finish = (result: AnswerWait) => {
      clearTimeout(timer);
      clearTimeout(hangupGrace);
      room.off(RoomEvent.ParticipantConnected, onConnected);
      room.off(RoomEvent.ParticipantAttributesChanged, onAttributes);
      room.off(RoomEvent.ParticipantDisconnected, onDisconnected);
      room.off(RoomEvent.Disconnected, onRoomClosed);
      resolve(result);
    };
    const gone = (seen: AttemptEndObservation) => {
      observe({ ...seen, endedAt: endedAt ?? Date.now() });
      finish('gone');
    };
    /** The callee's participant as it is now: answered, hung up (gone once it leaves, or after the grace), or still dialing. */
    const check = (p: RoomParticipant) => {
      noteStatus(p);
      if (isAnswered(p)) finish('answered');
      else if (lastCallStatus === 'hangup' && hangupGrace === undefined) {
        hangupGrace = setTimeout(() => gone({ disconnectReason: disconnectReasonName(undefined), lastCallStatus, rang }), HANGUP_LEAVE_GRACE_MS);
      }
    };
    const onConnected = (p: RoomParticipant) => {
      if (p.identity === identity) check(p);
    };
    const onAttributes = (_changed: Record<string, string>, p: RoomParticipant) => {
      if (p.identity === identity) check(p);
    };
    const onDisconnected = (p: RoomParticipant) => {
      if (p.identity !== identity) return;
      noteStatus(p);
      gone({ disconnectReason: disconnectReasonName(p.disconnectReason), lastCallStatus, rang });
    };
    // A callee that already hung up is gone, whatever happens to the room (or the time) meanwhile.
    const hungUpOr = (result: AnswerWait) => () =>
      lastCallStatus === 'hangup' ? gone({ disconnectReason: disconnectReasonName(undefined), lastCallStatus, rang }) : finish(result);
    const onRoomClosed = (reason: DisconnectReason) => hungUpOr(reason === DisconnectReason.ROOM_DELETED ? 'room_deleted' : 'closed')();
    const timer = setTimeout(hungUpOr('timeout'), timeoutMs);
    room.on(RoomEvent.ParticipantConnected, onConnected);
    room.on(RoomEvent.ParticipantAttributesChanged, onAttributes);
    room.on(RoomEvent.ParticipantDisconnected, onDisconnected);
    room.on(RoomEvent.Disconnected, onRoomClosed);
    const present = room.remoteParticipants.get(identity);
    if (present) check(present);
  });
}

/**
 * The inbound caller: the first participant in the room that is not an agent (the SIP participant the dispatch
 * rule put there). `closed` when the room goes away first (the caller hung up before the agent joined).
 */
export function waitForCaller<P extends RoomParticipant>(room: LifecycleRoom<P>, timeoutMs: number): Promise<P | 'closed' | 'timeout'> {
  return new Promise((resolve) => {
    const isCaller = (p: P) => p.kind !== ParticipantKind.AGENT;
    const finish = (result: P | 'closed' | 'timeout') => {
      clearTimeout(timer);
      room.off(RoomEvent.ParticipantConnected, onConnected);
      room.off(RoomEvent.Disconnected, onRoomClosed);
      resolve(result);
    };
    const onConnected = (p: P) => {
      if (isCaller(p)) finish(p);
    };
    const onRoomClosed = () => finish('closed');
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    room.on(RoomEvent.ParticipantConnected, onConnected);
    room.on(RoomEvent.Disconnected, onRoomClosed);
    const present = [...room.remoteParticipants.values()].find(isCaller);
    if (present) finish(present);
  });
}

/** Resolves when `identity` leaves the room (or the room closes), at most after `timeoutMs`. */
export function waitForLeave(room: LifecycleRoom, identity: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      room.off(RoomEvent.ParticipantDisconnected, onLeft);
      room.off(RoomEvent.Disconnected, finish);
      resolve();
    };
    const onLeft = (p: RoomParticipant) => {
      if (p.identity === identity) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    room.on(RoomEvent.ParticipantDisconnected, onLeft);
    room.on(RoomEvent.Disconnected, finish);
    if (!room.remoteParticipants.has(identity)) finish();
  });
}

/** The part of CallController that follows the callee (CallController satisfies it). */
export interface CalleeEvents {
  readonly callee: string | undefined;
  readonly isEnding: boolean;
  readonly roomKept: boolean;
  calleeLeft(detail?: string): Promise<unknown>;
  dtmfInput(digit: string): string;
}

/** Where a keypad press goes: the session answers it as a user turn (voice.AgentSession satisfies it). */
export interface KeypadReplies {
  generateReply(options: { userInput: string }): unknown;
}

export interface FollowOptions {
  /**
   * The agent saw the callee in the room before following started (the answered consumer-dialed participant, the
   * inbound caller): if it is gone by now, it hung up meanwhile (e.g. while the session was starting) and the call
   * ends at once. Not for a call the agent has just placed, whose participant the room may not show yet.
   */
  calleeSeen: boolean;
}

/**
 * Follows the callee in the room (the SIP lifecycle): hang-up, `sip.callStatus`, keypad presses. Returns a function
 * that removes the listeners (once the call has ended they do nothing; the room goes away with the job anyway).
 */
export function followCallee(
  room: LifecycleRoom,
  controller: CalleeEvents,
  session: KeypadReplies,
  log: Logger,
  options: FollowOptions = { calleeSeen: false },
): () => void {
  const onLeft = (p: RoomParticipant) => {
    if (p.identity === controller.callee) void controller.calleeLeft();
  };
  const onAttributes = (changed: Record<string, string>, p: RoomParticipant) => {
    if (p.identity !== controller.callee) return;
    const status = changed[SIP_ATTR.callStatus];
    if (status) log.debug({ status }, 'sip.callStatus changed');
    if (status === 'hangup') void controller.calleeLeft('callee hung up (sip.callStatus hangup)');
  };
  const onDtmf = (_code: number, digit: string, p: RoomParticipant) => {
    if (p.identity !== controller.callee || controller.isEnding) return;
    log.info({ digit }, 'keypad press');
    try {
      session.generateReply({ userInput: controller.dtmfInput(digit) });
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'could not hand the keypad press to the model');
    }
  };
  const onRoomClosed = () => {
    if (!controller.isEnding && !controller.roomKept) void controller.calleeLeft('the room closed');
  };
  room.on(RoomEvent.ParticipantDisconnected, onLeft);
  room.on(RoomEvent.ParticipantAttributesChanged, onAttributes);
  room.on(RoomEvent.DtmfReceived, onDtmf);
  room.on(RoomEvent.Disconnected, onRoomClosed);
  const callee = controller.callee;
  if (options.calleeSeen && callee !== undefined && !room.remoteParticipants.has(callee)) {
    log.info('the callee left before the call was followed');
    void controller.calleeLeft();
  }
  return () => {
    room.off(RoomEvent.ParticipantDisconnected, onLeft);
    room.off(RoomEvent.ParticipantAttributesChanged, onAttributes);
    room.off(RoomEvent.DtmfReceived, onDtmf);
    room.off(RoomEvent.Disconnected, onRoomClosed);
  };
}
