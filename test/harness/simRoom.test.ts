/**
 * The simulated agent's room and job (src/harness): a room built from the simulator's events shows what rtc-node's
 * Room would (participants with their SIP attributes, sip.callStatus changes, who left and why, the room's deletion),
 * and a job ends as agents-js' job process ends one.
 */
import { voice, initializeLogger, loggerOptions } from '@livekit/agents';
import { DisconnectReason, ParticipantKind, RoomEvent } from '@livekit/rtc-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimJob } from '../../src/harness/simJob.js';
import { SimRoom, type SimRoomParticipant } from '../../src/harness/simRoom.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { simClients } from '../agent/helpers.js';

let sim: LiveKitSim;
const logger = pino({ level: 'silent' });

beforeAll(async () => {
  if (!loggerOptions()) initializeLogger({ pretty: false, level: 'fatal' });
  sim = await startLiveKitSim();
});

afterAll(async () => {
  await sim.close();
});

/** Every room event, in order, as `event:identity:detail`. */
function record(room: SimRoom): string[] {
  const seen: string[] = [];
  room.on(RoomEvent.ParticipantConnected, (p: SimRoomParticipant) => seen.push(`connected:${p.identity}:${JSON.stringify(p.attributes)}`));
  room.on(RoomEvent.ParticipantAttributesChanged, (changed: Record<string, string>, p: SimRoomParticipant) =>
    seen.push(`attributes:${p.identity}:${JSON.stringify(changed)}`),
  );
  room.on(RoomEvent.ParticipantDisconnected, (p: SimRoomParticipant) => seen.push(`left:${p.identity}:${DisconnectReason[p.disconnectReason ?? 0]}`));
  room.on(RoomEvent.Disconnected, (reason: DisconnectReason) => seen.push(`disconnected:${DisconnectReason[reason]}`));
  return seen;
}

describe('a room built from the simulator events', () => {
  it('shows a dialed SIP participant with its attributes, its call status as it answers, why it left, and the deletion', async () => {
    const clients = simClients(sim);
    const number = '+15005550101';
    sim.network.setBehavior(number, { type: 'answer', afterMs: 20, callee: { kind: 'human' } });
    const room = new SimRoom('simroom-1', sim.events);
    const seen = record(room);
    await clients.sip.createSipParticipant(sim.outboundTrunkId, number, 'simroom-1', { participantIdentity: 'sip-1', waitUntilAnswered: true });
    const participant = room.remoteParticipants.get('sip-1');
    expect(participant?.kind).toBe(ParticipantKind.SIP);
    expect(participant?.attributes).toEqual({ 'sip.callStatus': 'active', 'sip.phoneNumber': number });

    sim.hangupCallee('simroom-1', 'sip-1');
    await clients.rooms.deleteRoom('simroom-1');
    expect(seen).toEqual([
      `connected:sip-1:${JSON.stringify({ 'sip.callStatus': 'dialing', 'sip.phoneNumber': number })}`,
      'attributes:sip-1:{"sip.callStatus":"active"}',
      'left:sip-1:CLIENT_INITIATED',
      'disconnected:ROOM_DELETED',
    ]);
    expect(room.remoteParticipants.size).toBe(0);
    room.close();
  });

  it('follows only its own room, and stops following when closed', async () => {
    const clients = simClients(sim);
    const before = sim.events.listenerCount('participant_left');
    const room = new SimRoom('simroom-2', sim.events);
    const seen = record(room);
    expect(sim.events.listenerCount('participant_left')).toBe(before + 1);
    sim.network.setBehavior('+15005550102', { type: 'busy' });
    await clients.sip
      .createSipParticipant(sim.outboundTrunkId, '+15005550102', 'simroom-other', { participantIdentity: 'sip-2', waitUntilAnswered: true })
      .catch(() => undefined);
    expect(seen).toEqual([]);
    room.close();
    expect(sim.events.listenerCount('participant_left')).toBe(before);
  });
});

describe('a simulated job', () => {
  it('ends as agents-js ends a job: waits for the entry, closes its session, leaves the room, then runs the shutdown callbacks', async () => {
    const room = new SimRoom('simjob-1', sim.events);
    const order: string[] = [];
    room.on(RoomEvent.Disconnected, (reason: DisconnectReason) => order.push(`room ${DisconnectReason[reason]}`));
    const job = new SimJob('AJ_1', '{}', room);
    const session = new voice.AgentSession({ llm: new voice.testing.FakeLLM([]), vad: null, userAwayTimeout: null, turnHandling: { turnDetection: 'manual' } });
    session.on(voice.AgentSessionEventTypes.Close, (ev) => order.push(`session ${ev.reason}`));
    await session.start({ agent: new voice.Agent({ instructions: 'test' }) });
    job.addSession(session);
    job.addShutdownCallback(async () => {
      order.push('callback');
    });
    await job.run(
      (async () => {
        order.push('entry');
        job.shutdown('done');
      })(),
      logger,
    );
    expect(order).toEqual(['entry', 'session user_initiated', 'room CLIENT_INITIATED', 'callback']);
    room.close();
  });

  it('a job the harness ends closes its session for the job (JOB_SHUTDOWN), whatever the entry is still doing', async () => {
    const room = new SimRoom('simjob-2', sim.events);
    const job = new SimJob('AJ_2', '{}', room);
    const session = new voice.AgentSession({ llm: new voice.testing.FakeLLM([]), vad: null, userAwayTimeout: null, turnHandling: { turnDetection: 'manual' } });
    const closed = new Promise<string>((resolve) => session.on(voice.AgentSessionEventTypes.Close, (ev) => resolve(String(ev.reason))));
    await session.start({ agent: new voice.Agent({ instructions: 'test' }) });
    job.addSession(session);
    let release: () => void = () => undefined;
    const entry = new Promise<void>((resolve) => {
      release = resolve;
    });
    const running = job.run(entry, logger);
    job.requestClose('harness closing');
    expect(await closed).toBe(voice.CloseReason.JOB_SHUTDOWN);
    release();
    await running;
    room.close();
  });
});
