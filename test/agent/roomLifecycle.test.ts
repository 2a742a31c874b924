/**
 * The SIP lifecycle in a room (src/agent/roomLifecycle.ts) against FakeRoom, which emits rtc-node's events with
 * rtc-node's arguments: answer, hang-up, leaving, the room closing, timeouts, keypad presses, and that every wait
 * removes its listeners once settled.
 */
import { DisconnectReason, ParticipantKind, type Room } from '@livekit/rtc-node';
import { pino } from 'pino';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import type { CallController } from '../../src/agent/callController.js';
import type { CallRoom } from '../../src/agent/entry.js';
import type { AttemptEndObservation } from '../../src/core/callStore.js';
import {
  HANGUP_LEAVE_GRACE_MS,
  disconnectReasonName,
  followCallee,
  waitForCaller,
  waitForLeave,
  waitForSipAnswer,
  type CalleeEvents,
  type KeypadReplies,
  type LifecycleRoom,
} from '../../src/agent/roomLifecycle.js';
import { FakeRoom } from './fakeRoom.js';

const logger = pino({ level: 'silent' });
const CALLEE = 'sip-callee';
const LONG_MS = 60_000;

afterEach(() => {
  vi.useRealTimers();
});

/** Settles `promise` or says it has not settled yet (microtasks only: no real time passes). */
async function peek<T>(promise: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

describe('types', () => {
  it("rtc-node's Room is a LifecycleRoom and a CallRoom; CallController follows the callee", () => {
    expectTypeOf<Room>().toExtend<LifecycleRoom>();
    expectTypeOf<Room>().toExtend<CallRoom>();
    expectTypeOf<CallController>().toExtend<CalleeEvents>();
  });
});

describe('waitForSipAnswer (consumer-dialed callee)', () => {
  it('answered when sip.callStatus changes to active; ringing before that is not an answer', async () => {
    const room = new FakeRoom('r');
    const wait = waitForSipAnswer(room, CALLEE, LONG_MS);
    room.join(CALLEE, { 'sip.callStatus': 'dialing' });
    room.setAttributes(CALLEE, { 'sip.callStatus': 'ringing' });
    expect(await peek(wait)).toBe('pending');
    room.setAttributes(CALLEE, { 'sip.callStatus': 'active' });
    expect(await wait).toBe('answered');
    expect(room.lifecycleListeners()).toBe(0);
  });

  it('answered when the participant joins already active, and when it is already in the room', async () => {
    const joining = new FakeRoom('r');
    const wait = waitForSipAnswer(joining, CALLEE, LONG_MS);
    joining.join(CALLEE, { 'sip.callStatus': 'active' });
    expect(await wait).toBe('answered');
    expect(joining.lifecycleListeners()).toBe(0);

    const present = new FakeRoom('r');
    present.join(CALLEE, { 'sip.callStatus': 'active' });
    expect(await waitForSipAnswer(present, CALLEE, LONG_MS)).toBe('answered');
    expect(present.lifecycleListeners()).toBe(0);
  });

  it('someone else answering, or another participant leaving, does not count', async () => {
    const room = new FakeRoom('r');
    const wait = waitForSipAnswer(room, CALLEE, LONG_MS);
    room.join('sip-other', { 'sip.callStatus': 'active' });
    room.join(CALLEE, { 'sip.callStatus': 'ringing' });
    room.setAttributes('sip-other', { 'sip.callStatus': 'active' });
    room.leave('sip-other');
    expect(await peek(wait)).toBe('pending');
    room.leave(CALLEE);
    expect(await wait).toBe('gone');
  });

  it('gone when sip.callStatus goes to hangup before an answer; the participant leaving then says why', async () => {
    const room = new FakeRoom('r');
    const seen: AttemptEndObservation[] = [];
    const wait = waitForSipAnswer(room, CALLEE, LONG_MS, (s) => seen.push(s));
    room.join(CALLEE, { 'sip.callStatus': 'ringing' });
    room.setAttributes(CALLEE, { 'sip.callStatus': 'hangup' });
    expect(await peek(wait)).toBe('pending');
    room.leave(CALLEE, DisconnectReason.USER_REJECTED);
    expect(await wait).toBe('gone');
    expect(seen).toEqual([{ disconnectReason: 'USER_REJECTED', lastCallStatus: 'hangup', rang: true, endedAt: expect.any(Number) }]);
    expect(room.lifecycleListeners()).toBe(0);
  });

  it('a hangup whose participant stays is gone after the grace, its reason unknown', async () => {
    vi.useFakeTimers();
    const room = new FakeRoom('r');
    const seen: AttemptEndObservation[] = [];
    const wait = waitForSipAnswer(room, CALLEE, LONG_MS, (s) => seen.push(s));
    room.join(CALLEE, { 'sip.callStatus': 'ringing' });
    room.setAttributes(CALLEE, { 'sip.callStatus': 'hangup' });
    await vi.advanceTimersByTimeAsync(HANGUP_LEAVE_GRACE_MS - 1);
    expect(await Promise.race([wait, Promise.resolve('pending')])).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(await wait).toBe('gone');
    expect(seen).toEqual([{ disconnectReason: 'UNKNOWN_REASON', lastCallStatus: 'hangup', rang: true, endedAt: expect.any(Number) }]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gone when the SIP participant disconnects (the call failed), with its disconnect reason and last call status', async () => {
    const room = new FakeRoom('r');
    const seen: AttemptEndObservation[] = [];
    const wait = waitForSipAnswer(room, CALLEE, LONG_MS, (s) => seen.push(s));
    room.join(CALLEE, { 'sip.callStatus': 'dialing' });
    room.setAttributes(CALLEE, { 'sip.callStatus': 'ringing' });
    room.leave(CALLEE, DisconnectReason.USER_UNAVAILABLE);
    expect(await wait).toBe('gone');
    expect(seen).toEqual([{ disconnectReason: 'USER_UNAVAILABLE', lastCallStatus: 'ringing', rang: true, endedAt: expect.any(Number) }]);
    expect(room.lifecycleListeners()).toBe(0);
  });

  it('a participant that leaves without a reason (rtc-node: UNKNOWN_REASON) is observed as UNKNOWN_REASON', async () => {
    const room = new FakeRoom('r');
    const seen: AttemptEndObservation[] = [];
    const wait = waitForSipAnswer(room, CALLEE, LONG_MS, (s) => seen.push(s));
    room.join(CALLEE, { 'sip.callStatus': 'dialing' });
    room.leave(CALLEE);
    expect(await wait).toBe('gone');
    expect(seen).toEqual([{ disconnectReason: 'UNKNOWN_REASON', lastCallStatus: 'dialing', rang: false, endedAt: expect.any(Number) }]);
    expect(disconnectReasonName(DisconnectReason.SIP_TRUNK_FAILURE)).toBe('SIP_TRUNK_FAILURE');
  });

  it('room_deleted when LiveKit deleted the room, closed when the agent left it otherwise, whatever the callee was doing', async () => {
    for (const [reason, expected] of [
      [DisconnectReason.ROOM_DELETED, 'room_deleted'],
      [DisconnectReason.CLIENT_INITIATED, 'closed'],
    ] as const) {
      const room = new FakeRoom('r');
      const wait = waitForSipAnswer(room, CALLEE, LONG_MS);
      room.join(CALLEE, { 'sip.callStatus': 'ringing' });
      room.close(reason);
      expect(await wait).toBe(expected);
      expect(room.lifecycleListeners()).toBe(0);
    }
  });

  it('timeout when nothing happens in time; later events change nothing', async () => {
    vi.useFakeTimers();
    const room = new FakeRoom('r');
    const wait = waitForSipAnswer(room, CALLEE, 5000);
    room.join(CALLEE, { 'sip.callStatus': 'ringing' });
    await vi.advanceTimersByTimeAsync(4999);
    expect(await Promise.race([wait, Promise.resolve('pending')])).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(await wait).toBe('timeout');
    expect(room.lifecycleListeners()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    room.setAttributes(CALLEE, { 'sip.callStatus': 'active' });
    expect(await wait).toBe('timeout');
  });

  it('an answer clears the timer', async () => {
    vi.useFakeTimers();
    const room = new FakeRoom('r');
    const wait = waitForSipAnswer(room, CALLEE, 5000);
    expect(vi.getTimerCount()).toBe(1);
    room.join(CALLEE, { 'sip.callStatus': 'active' });
    expect(await wait).toBe('answered');
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('waitForCaller (inbound)', () => {
  it('the first participant that is not an agent; agents joining are skipped', async () => {
    const room = new FakeRoom('call-_12025550123_abc');
    const wait = waitForCaller(room, LONG_MS);
    room.join('agent-other', {}, ParticipantKind.AGENT);
    expect(await peek(wait)).toBe('pending');
    const caller = room.join('sip-caller', { 'sip.phoneNumber': '+12025550123' });
    expect(await wait).toBe(caller);
    expect(room.lifecycleListeners()).toBe(0);
  });

  it('a caller already in the room is returned at once', async () => {
    const room = new FakeRoom('r');
    room.join('agent-other', {}, ParticipantKind.AGENT);
    const caller = room.join('sip-caller');
    expect(await waitForCaller(room, LONG_MS)).toBe(caller);
    expect(room.lifecycleListeners()).toBe(0);
  });

  it('closed when the room closes first; timeout when nobody comes', async () => {
    const closing = new FakeRoom('r');
    const wait = waitForCaller(closing, LONG_MS);
    closing.close();
    expect(await wait).toBe('closed');
    expect(closing.lifecycleListeners()).toBe(0);

    vi.useFakeTimers();
    const empty = new FakeRoom('r');
    const timeout = waitForCaller(empty, 1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await timeout).toBe('timeout');
    expect(empty.lifecycleListeners()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('waitForLeave (after a warm transfer)', () => {
  it('resolves when that participant leaves, not another one', async () => {
    const room = new FakeRoom('r');
    room.join(CALLEE);
    room.join('sip-operator');
    const wait = waitForLeave(room, CALLEE, LONG_MS);
    room.leave('sip-operator');
    expect(await peek(wait)).toBe('pending');
    room.leave(CALLEE);
    await wait;
    expect(room.lifecycleListeners()).toBe(0);
  });

  it('resolves at once when the participant is not in the room, when the room closes, and at the time limit', async () => {
    const absent = new FakeRoom('r');
    await waitForLeave(absent, CALLEE, LONG_MS);
    expect(absent.lifecycleListeners()).toBe(0);

    const closing = new FakeRoom('r');
    closing.join(CALLEE);
    const wait = waitForLeave(closing, CALLEE, LONG_MS);
    closing.close();
    await wait;
    expect(closing.lifecycleListeners()).toBe(0);

    vi.useFakeTimers();
    const staying = new FakeRoom('r');
    staying.join(CALLEE);
    const timed = waitForLeave(staying, CALLEE, 2000);
    await vi.advanceTimersByTimeAsync(2000);
    await timed;
    expect(staying.lifecycleListeners()).toBe(0);
  });
});

/** A CallController stand-in that records what the room told it. */
class FakeCallee implements CalleeEvents {
  readonly left: (string | undefined)[] = [];
  isEnding = false;
  roomKept = false;

  constructor(readonly callee: string | undefined) {}

  async calleeLeft(detail?: string): Promise<void> {
    this.left.push(detail);
  }

  dtmfInput(digit: string): string {
    return `[keypad] ${digit}`;
  }
}

class FakeReplies implements KeypadReplies {
  readonly inputs: string[] = [];
  fail = false;

  generateReply(options: { userInput: string }): void {
    if (this.fail) throw new Error('AgentSession is not running');
    this.inputs.push(options.userInput);
  }
}

describe('followCallee (the conversation phase)', () => {
  function follow({ calleeIdentity }: { calleeIdentity: string | undefined } = { calleeIdentity: CALLEE }) {
    const room = new FakeRoom('r');
    room.join(CALLEE, { 'sip.callStatus': 'active' });
    room.join('sip-other', { 'sip.callStatus': 'active' });
    const controller = new FakeCallee(calleeIdentity);
    const replies = new FakeReplies();
    const stop = followCallee(room, controller, replies, logger);
    return { room, controller, replies, stop };
  }

  it('the callee disconnecting ends the call (default reason); someone else leaving does not', () => {
    const { room, controller } = follow();
    room.leave('sip-other');
    expect(controller.left).toEqual([]);
    room.leave(CALLEE);
    expect(controller.left).toEqual([undefined]);
  });

  it("sip.callStatus hangup of the callee ends the call with its reason; other changes and others' hangups do not", () => {
    const { room, controller } = follow();
    room.setAttributes(CALLEE, { 'sip.callStatus': 'active', 'lk.custom': 'x' });
    room.setAttributes(CALLEE, { 'lk.custom': 'y' });
    room.setAttributes('sip-other', { 'sip.callStatus': 'hangup' });
    expect(controller.left).toEqual([]);
    room.setAttributes(CALLEE, { 'sip.callStatus': 'hangup' });
    expect(controller.left).toEqual(['callee hung up (sip.callStatus hangup)']);
  });

  it("routes the callee's keypad presses to the session as user input; others' presses and presses while ending are ignored", () => {
    const { room, controller, replies } = follow();
    room.dtmf(CALLEE, '1');
    room.dtmf('sip-other', '2');
    room.dtmf(CALLEE, '#');
    expect(replies.inputs).toEqual(['[keypad] 1', '[keypad] #']);
    controller.isEnding = true;
    room.dtmf(CALLEE, '3');
    expect(replies.inputs).toEqual(['[keypad] 1', '[keypad] #']);
  });

  it('a session that cannot take the keypad press is logged, not thrown into the room', () => {
    const { room, replies } = follow();
    replies.fail = true;
    expect(() => room.dtmf(CALLEE, '1')).not.toThrow();
  });

  it('with no callee known, nothing about participants is routed', () => {
    const { room, controller, replies } = follow({ calleeIdentity: undefined });
    room.dtmf(CALLEE, '1');
    room.setAttributes(CALLEE, { 'sip.callStatus': 'hangup' });
    room.leave(CALLEE);
    expect(controller.left).toEqual([]);
    expect(replies.inputs).toEqual([]);
  });

  it('the room closing ends the call, unless it is ending already or the room was handed over (warm transfer)', () => {
    const closing = follow();
    closing.room.close();
    expect(closing.controller.left).toEqual(['the room closed']);

    const ending = follow();
    ending.controller.isEnding = true;
    ending.room.close();
    expect(ending.controller.left).toEqual([]);

    const kept = follow();
    kept.controller.roomKept = true;
    kept.room.close();
    expect(kept.controller.left).toEqual([]);
  });

  it('a callee seen before and gone by the time following starts has hung up; unless seen, absence means nothing yet', () => {
    const room = new FakeRoom('r');
    const seen = new FakeCallee(CALLEE);
    followCallee(room, seen, new FakeReplies(), logger, { calleeSeen: true });
    expect(seen.left).toEqual([undefined]);

    const placed = new FakeCallee(CALLEE);
    followCallee(room, placed, new FakeReplies(), logger);
    expect(placed.left).toEqual([]);

    const present = new FakeRoom('r');
    present.join(CALLEE, { 'sip.callStatus': 'active' });
    const here = new FakeCallee(CALLEE);
    followCallee(present, here, new FakeReplies(), logger, { calleeSeen: true });
    expect(here.left).toEqual([]);
  });

  it('the returned function removes every listener', () => {
    const { room, controller, replies, stop } = follow();
    expect(room.lifecycleListeners()).toBe(4);
    stop();
    expect(room.lifecycleListeners()).toBe(0);
    room.dtmf(CALLEE, '1');
    room.leave(CALLEE);
    expect(controller.left).toEqual([]);
    expect(replies.inputs).toEqual([]);
  });
});
