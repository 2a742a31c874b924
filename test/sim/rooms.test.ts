/** RoomService, AgentDispatchService and SIP trunk admin through the real SDK clients; shutdown hygiene. */
import { ServerError } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import { startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { clientsFor, rejectionOf, useFreshSim, type SimClients } from './simClients.js';

let sim: LiveKitSim;
let clients: SimClients;

useFreshSim((started, sdk) => {
  sim = started;
  clients = sdk;
});

describe('agent dispatch', () => {
  it('creates the room and records the dispatch with its agent name and metadata', async () => {
    const event = waitForEvent(sim.events, 'dispatch_created');
    const metadata = JSON.stringify({ phone_number: '+15550501000', call_id: 'c-1' });
    const dispatch = await clients.dispatch.createDispatch('d-room', 'outbound-agent', { metadata });
    expect(dispatch).toMatchObject({ agentName: 'outbound-agent', room: 'd-room', metadata });
    expect(dispatch.id).toMatch(/^AD_/);
    expect(await event).toMatchObject({ room: 'd-room', agentName: 'outbound-agent', metadata, dispatchId: dispatch.id });
    expect(sim.dispatches).toHaveLength(1);
    expect((await clients.rooms.listRooms()).map((r) => r.name)).toEqual(['d-room']);

    expect(await clients.dispatch.listDispatch('d-room')).toHaveLength(1);
    expect((await clients.dispatch.getDispatch(dispatch.id, 'd-room'))?.agentName).toBe('outbound-agent');
    await clients.dispatch.deleteDispatch(dispatch.id, 'd-room');
    expect(await clients.dispatch.listDispatch('d-room')).toEqual([]);
    expect(sim.dispatches).toHaveLength(1); // the inspection log keeps it
  });

  it('listing the dispatches of an unknown room is not_found', async () => {
    const err = await rejectionOf(clients.dispatch.listDispatch('nowhere'));
    expect((err as ServerError).status).toBe(404);
  });
});

describe('rooms and participants', () => {
  it('creates, lists and deletes rooms; deleting an unknown room is not_found', async () => {
    const room = await clients.rooms.createRoom({ name: 'r1', metadata: 'm', emptyTimeout: 30 });
    expect(room).toMatchObject({ name: 'r1', metadata: 'm', emptyTimeout: 30 });
    expect(room.sid).toMatch(/^RM_/);
    await clients.rooms.createRoom({ name: 'r2' });
    expect((await clients.rooms.listRooms(['r2', 'zz'])).map((r) => r.name)).toEqual(['r2']);
    await clients.rooms.deleteRoom('r1');
    const err = await rejectionOf(clients.rooms.deleteRoom('r1'));
    expect((err as ServerError).status).toBe(404);
    expect((err as ServerError).message).toBe('twirp error unknown: requested room does not exist');
  });

  it('updates attributes and metadata (an empty value deletes a key)', async () => {
    await clients.sip.createSipParticipant(sim.outboundTrunkId, '+15550501001', 'u-room', {
      participantIdentity: 'p',
      participantAttributes: { a: '1', b: '2' },
    });
    const updated = await clients.rooms.updateParticipant('u-room', 'p', { metadata: 'hello', attributes: { a: '', c: '3' } });
    expect(updated.metadata).toBe('hello');
    expect(updated.attributes).toMatchObject({ b: '2', c: '3' });
    expect(updated.attributes.a).toBeUndefined();
    const err = await rejectionOf(clients.rooms.getParticipant('u-room', 'ghost'));
    expect((err as ServerError).status).toBe(404);
  });

  it('moves a SIP participant to another room; its call carries on there', async () => {
    sim.network.setDefault({ type: 'answer', afterMs: 20 });
    await clients.sip.createSipParticipant(sim.outboundTrunkId, '+15550501002', 'from-room', {
      participantIdentity: 'p',
      waitUntilAnswered: true,
    });
    await clients.rooms.moveParticipant('from-room', 'p', 'to-room');
    expect(sim.participants('from-room')).toEqual([]);
    expect(sim.participants('to-room').map((p) => p.identity)).toEqual(['p']);
    const ended = waitForEvent(sim.events, 'call_ended');
    expect(sim.hangupCallee('to-room', 'p')).toBe(true);
    expect((await ended).room).toBe('to-room');
  });
});

describe('SIP trunks and dispatch rules', () => {
  it('seeds the outbound trunk and supports create/list/delete of trunks and rules', async () => {
    expect((await clients.sip.listSipOutboundTrunk()).map((t) => t.sipTrunkId)).toEqual(['ST_sim_outbound']);
    const outbound = await clients.sip.createSipOutboundTrunk('carrier', 'sip.carrier.invalid', ['+15550509999']);
    expect(outbound.sipTrunkId).toMatch(/^ST_/);
    const inbound = await clients.sip.createSipInboundTrunk('in', ['+15550508888']);
    expect((await clients.sip.listSipInboundTrunk()).map((t) => t.sipTrunkId)).toEqual([inbound.sipTrunkId]);
    const rule = await clients.sip.createSipDispatchRule(
      { type: 'individual', roomPrefix: 'call-' },
      { name: 'inbound', trunkIds: [inbound.sipTrunkId] },
    );
    expect(rule.sipDispatchRuleId).toMatch(/^SDR_/);
    expect((await clients.sip.listSipDispatchRule()).map((r) => r.name)).toEqual(['inbound']);
    await clients.sip.deleteSipDispatchRule(rule.sipDispatchRuleId);
    await clients.sip.deleteSipTrunk(outbound.sipTrunkId);
    expect(await clients.sip.listSipOutboundTrunk()).toHaveLength(1);
    const err = await rejectionOf(clients.sip.deleteSipDispatchRule(rule.sipDispatchRuleId));
    expect((err as ServerError).status).toBe(404);
  });
});

describe('close', () => {
  it('ends pending calls, refuses new connections, and is idempotent', async () => {
    sim.network.setDefault({ type: 'answer', afterMs: 10_000 });
    const pending = rejectionOf(
      clients.sip.createSipParticipant(sim.outboundTrunkId, '+15550501003', 'closing', { waitUntilAnswered: true, ringingTimeout: 20 }),
    );
    await waitForEvent(sim.events, 'call_dialing');
    const failed = waitForEvent(sim.events, 'call_failed');
    await Promise.all([sim.close(), sim.close()]);
    expect((await failed).reason).toBe('sim_closed');
    const err = await pending;
    expect((err as ServerError).code ?? 'transport').toMatch(/canceled|transport/);
    await expect(fetch(sim.url)).rejects.toThrow();
  });

  it('leaves no sockets or timers behind', async () => {
    const counted = ['TCPServerWrap', 'TCPSocketWrap', 'Timeout'];
    const count = (): Record<string, number> => {
      const counts: Record<string, number> = {};
      for (const kind of process.getActiveResourcesInfo()) if (counted.includes(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
      return counts;
    };
    await sim.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const before = count();
    const extra = await startLiveKitSim();
    const extraClients = clientsFor(extra);
    extra.network.setDefault({ type: 'answer', afterMs: 5000, hangupAfterMs: 60_000 });
    await extraClients.sip.createSipParticipant(extra.outboundTrunkId, '+15550501004', 'x', {});
    await extraClients.rooms.listRooms();
    await extra.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const after = count();
    for (const kind of counted) expect(after[kind] ?? 0, kind).toBeLessThanOrEqual(before[kind] ?? 0);
  });
});
