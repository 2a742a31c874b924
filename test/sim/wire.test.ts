/** Auth and Twirp wire format: what the real SDK and a raw HTTP client see. */
import { ServerError, SipCallError } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { clientsFor, postTwirp, rejectionOf, tokenFor } from './simClients.js';

let sim: LiveKitSim;

beforeAll(async () => {
  sim = await startLiveKitSim();
});

afterAll(async () => {
  await sim.close();
});

describe('auth', () => {
  it('rejects a token signed with the wrong secret: 401, plain text, no Twirp code', async () => {
    const { rooms } = clientsFor(sim, 'not-the-secret');
    const err = await rejectionOf(rooms.listRooms());
    expect(err).toBeInstanceOf(ServerError);
    const serverError = err as ServerError;
    expect(serverError.status).toBe(401);
    expect(serverError.code).toBeUndefined();
    expect(serverError.message).toMatch(/^invalid authorization token/);
    expect(sim.requests.at(-1)).toMatchObject({ service: 'RoomService', method: 'ListRooms', httpStatus: 401 });
  });

  it('rejects an unknown API key with 401', async () => {
    const reply = await postTwirp(sim, '/twirp/livekit.RoomService/ListRooms', {}, { token: 'x.y.z' });
    expect(reply.status).toBe(401);
  });

  it('answers a missing grant with Twirp unauthenticated "permissions denied", as LiveKit does', async () => {
    const token = await tokenFor(sim, { roomAdmin: true, room: 'r' }, { admin: true }); // no sip.call
    const reply = await postTwirp(sim, '/twirp/livekit.SIP/CreateSIPParticipant', { sip_call_to: '+15550100000' }, { token });
    expect(reply.status).toBe(401);
    expect(reply.contentType).toBe('application/json');
    expect(JSON.parse(reply.text)).toEqual({ code: 'unauthenticated', msg: 'permissions denied' });
  });

  it('treats a request without a token as having no grants', async () => {
    const reply = await postTwirp(sim, '/twirp/livekit.RoomService/ListRooms', {});
    expect(reply.status).toBe(401);
    expect(JSON.parse(reply.text)).toMatchObject({ code: 'unauthenticated' });
  });

  it('checks the room of a roomAdmin grant', async () => {
    const token = await tokenFor(sim, { roomAdmin: true, room: 'other' });
    const reply = await postTwirp(sim, '/twirp/livekit.RoomService/ListParticipants', { room: 'mine' }, { token });
    expect(reply.status).toBe(401);
  });
});

describe('routing and encoding', () => {
  it('answers an unknown method with Twirp bad_route 404', async () => {
    const token = await tokenFor(sim, { roomList: true });
    const reply = await postTwirp(sim, '/twirp/livekit.RoomService/NoSuchMethod', {}, { token });
    expect(reply.status).toBe(404);
    expect(reply.contentType).toBe('application/json');
    expect(JSON.parse(reply.text)).toEqual({
      code: 'bad_route',
      msg: 'no handler for path "/twirp/livekit.RoomService/NoSuchMethod"',
      meta: { twirp_invalid_route: 'POST /twirp/livekit.RoomService/NoSuchMethod' },
    });
  });

  it('answers a GET with bad_route and an unknown service with a plain 404', async () => {
    const get = await postTwirp(sim, '/twirp/livekit.RoomService/ListRooms', undefined, { method: 'GET' });
    expect(get.status).toBe(404);
    expect(JSON.parse(get.text)).toMatchObject({ code: 'bad_route' });
    const unknown = await postTwirp(sim, '/twirp/livekit.Nope/Method', {});
    expect(unknown.status).toBe(404);
    expect(unknown.text).toBe('404 page not found\n');
  });

  it('rejects an unexpected Content-Type with bad_route', async () => {
    const token = await tokenFor(sim, { roomList: true });
    const reply = await postTwirp(sim, '/twirp/livekit.RoomService/ListRooms', {}, { token, contentType: 'text/plain' });
    expect(reply.status).toBe(404);
    expect(JSON.parse(reply.text)).toMatchObject({ code: 'bad_route', msg: 'unexpected Content-Type: "text/plain"' });
  });

  it('answers malformed JSON with Twirp malformed 400', async () => {
    const token = await tokenFor(sim, { roomList: true });
    const response = await fetch(new URL('/twirp/livekit.RoomService/ListRooms', sim.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: '{not json',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'malformed' });
  });

  it('accepts snake_case and camelCase request fields and replies with proto names and defaults', async () => {
    const token = await tokenFor(sim, { roomCreate: true });
    const snake = await postTwirp(sim, '/twirp/livekit.RoomService/CreateRoom', { name: 'wire-room', empty_timeout: 42 }, { token });
    expect(snake.status).toBe(200);
    expect(JSON.parse(snake.text)).toMatchObject({ name: 'wire-room', empty_timeout: 42, num_participants: 0 });
    const camel = await postTwirp(sim, '/twirp/livekit.RoomService/CreateRoom', { name: 'wire-room-2', emptyTimeout: 7 }, { token });
    expect(JSON.parse(camel.text)).toMatchObject({ name: 'wire-room-2', empty_timeout: 7 });
  });

  it('gives SIP failures the LiveKit error body: code, msg, meta with sip_status_code/sip_status/error_details', async () => {
    sim.network.setBehavior('+15550107777', { type: 'busy' });
    const token = await tokenFor(sim, {}, { call: true });
    const reply = await postTwirp(
      sim,
      '/twirp/livekit.SIP/CreateSIPParticipant',
      { sip_trunk_id: sim.outboundTrunkId, sip_call_to: '+15550107777', room_name: 'wire-call', wait_until_answered: true },
      { token },
    );
    expect(reply.status).toBe(429);
    expect(reply.contentType).toBe('application/json');
    const body = JSON.parse(reply.text) as { code: string; msg: string; meta: Record<string, string> };
    expect(body.code).toBe('resource_exhausted');
    expect(body.msg).toBe('twirp error unknown: INVITE failed: sip status: 486: Busy Here');
    expect(body.meta.sip_status_code).toBe('486');
    expect(body.meta.sip_status).toBe('Busy Here');
    expect(Buffer.from(body.meta.error_details ?? '', 'base64').toString('latin1')).toContain('type.googleapis.com/livekit.SIPStatus');
  });

  it('lets the SDK turn that body into a SipCallError', async () => {
    sim.network.setBehavior('+15550107778', { type: 'busy' });
    const { sip } = clientsFor(sim);
    const err = await rejectionOf(sip.createSipParticipant(sim.outboundTrunkId, '+15550107778', 'wire-call-2', { waitUntilAnswered: true }));
    expect(err).toBeInstanceOf(SipCallError);
    expect((err as SipCallError).sipStatusCode).toBe(486);
  });

  it('logs every routed request with its status', () => {
    const failed = sim.requests.filter((r) => r.method === 'CreateSIPParticipant' && r.httpStatus === 429);
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(failed[0]).toMatchObject({ service: 'SIP', twirpCode: 'resource_exhausted', clientDisconnected: false });
  });
});
