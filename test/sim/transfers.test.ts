/** SIP REFER transfers: accept, reject, the early-resolve (silent) reject, no answer, bad targets. */
import { ServerError, SipCallError } from 'livekit-server-sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startLiveKitSim, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { clientsFor, postTwirp, rejectionOf, sleep, tokenFor, type SimClients } from './simClients.js';

let sim: LiveKitSim;
let clients: SimClients;
const ROOM = 'transfer-room';
const IDENTITY = 'callee';

beforeEach(async () => {
  sim = await startLiveKitSim();
  clients = clientsFor(sim);
  sim.network.setDefault({ type: 'answer', afterMs: 20 });
  await clients.sip.createSipParticipant(sim.outboundTrunkId, '+15550401000', ROOM, {
    waitUntilAnswered: true,
    participantIdentity: IDENTITY,
  });
});

afterEach(async () => {
  await sim.close();
});

describe('transfers', () => {
  it('accept: the request returns 200, then the SIP participant leaves the room', async () => {
    sim.network.setTransfer('tel:+15550409000', { result: 'accept', respondAfterMs: 50, afterMs: 200 });
    const requested = waitForEvent(sim.events, 'transfer_requested');
    const completed = waitForEvent(sim.events, 'transfer_completed');
    await clients.sip.transferSipParticipant(ROOM, IDENTITY, 'tel:+15550409000', { ringingTimeout: 2 });
    expect((await requested).transferTo).toBe('tel:+15550409000');
    await completed;
    expect(sim.participants(ROOM)).toHaveLength(1); // still there right after the 200
    const left = await waitForEvent(sim.events, 'participant_left', (e) => e.identity === IDENTITY);
    expect(left.reason).toBe('CLIENT_INITIATED');
    expect(sim.transfers[0]).toMatchObject({ outcome: 'completed', transferTo: 'tel:+15550409000', room: ROOM });
    expect(sim.calls[0]?.endReason).toBe('transferred');
  });

  it('reject: the request fails with SIP 603 Decline (HTTP 403) and the participant stays', async () => {
    sim.network.setTransfer('sip:desk@sim.invalid', { result: 'reject' });
    const failed = waitForEvent(sim.events, 'transfer_failed');
    const err = await rejectionOf(clients.sip.transferSipParticipant(ROOM, IDENTITY, 'sip:desk@sim.invalid', { ringingTimeout: 2 }));
    expect(err).toBeInstanceOf(SipCallError);
    expect((err as SipCallError).sipStatusCode).toBe(603);
    expect((err as SipCallError).sipStatus).toBe('Decline');
    expect((err as SipCallError).status).toBe(403);
    expect(await failed).toMatchObject({ sipStatusCode: 603, silent: false, reason: 'rejected' });
    expect(sim.participants(ROOM)[0]?.attributes['sip.callStatus']).toBe('active');
  });

  it('asyncReject: the request returns 200 at once and the participant simply stays', async () => {
    sim.network.setTransfer('tel:+15550409002', { result: 'reject', asyncReject: true, afterMs: 100 });
    const failed = waitForEvent(sim.events, 'transfer_failed');
    await clients.sip.transferSipParticipant(ROOM, IDENTITY, 'tel:+15550409002', { ringingTimeout: 2 });
    expect(await failed).toMatchObject({ silent: true, sipStatusCode: 603 });
    await sleep(100);
    expect(sim.participants(ROOM).map((p) => p.identity)).toEqual([IDENTITY]);
    expect(sim.transfers[0]?.outcome).toBe('silently_failed');
  });

  it('no_answer: the request fails when the transfer ringing timeout ends; the participant stays', async () => {
    sim.network.setTransfer('tel:+15550409003', { result: 'no_answer' });
    const started = Date.now();
    const err = await rejectionOf(clients.sip.transferSipParticipant(ROOM, IDENTITY, 'tel:+15550409003', { ringingTimeout: 1 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000 - 20);
    expect(err).not.toBeInstanceOf(SipCallError);
    expect((err as ServerError).code).toBe('canceled');
    expect(sim.participants(ROOM)).toHaveLength(1);
  });

  it('replies with the TransferSIPParticipantResponse of current LiveKit', async () => {
    sim.network.setTransfer('tel:+15550409004', { result: 'accept', respondAfterMs: 10, afterMs: 50 });
    const token = await tokenFor(sim, { roomAdmin: true, room: ROOM }, { call: true });
    const reply = await postTwirp(
      sim,
      '/twirp/livekit.SIP/TransferSIPParticipant',
      { room_name: ROOM, participant_identity: IDENTITY, transfer_to: 'tel:+15550409004' },
      { token },
    );
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.text)).toMatchObject({ status: 'STS_TRANSFER_SUCCESSFUL', reason: 'STR_COMPLETED' });
  });

  it('an unknown participant is not_found; a non-SIP URI is invalid_argument', async () => {
    const missing = await rejectionOf(clients.sip.transferSipParticipant(ROOM, 'nobody', 'tel:+15550409000'));
    expect((missing as ServerError).status).toBe(404);
    expect((missing as ServerError).code).toBe('not_found');
    const badUri = await rejectionOf(clients.sip.transferSipParticipant(ROOM, IDENTITY, '+15550409000'));
    expect((badUri as ServerError).status).toBe(400);
  });

  it('the call ending during a transfer settles it as call_ended', async () => {
    sim.network.setTransfer('tel:+15550409005', { result: 'no_answer' });
    const pending = clients.sip.transferSipParticipant(ROOM, IDENTITY, 'tel:+15550409005', { ringingTimeout: 2 });
    await waitForEvent(sim.events, 'transfer_requested');
    const failed = waitForEvent(sim.events, 'transfer_failed');
    sim.hangupCallee(ROOM, IDENTITY);
    await pending;
    expect((await failed).reason).toBe('call_ended');
  });
});
