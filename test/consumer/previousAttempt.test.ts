import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoomServiceClient, SipClient } from 'livekit-server-sdk';
import { inspectPreviousAttempt } from '../../src/consumer/previousAttempt.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { waitFor } from '../helpers/waitFor.js';

let sim: LiveKitSim;
let rooms: RoomServiceClient;
let sip: SipClient;

beforeAll(async () => {
  sim = await startLiveKitSim({ network: { default: { type: 'answer', afterMs: 400 } } });
  rooms = new RoomServiceClient(sim.url, sim.apiKey, sim.apiSecret, { failover: false });
  sip = new SipClient(sim.url, sim.apiKey, sim.apiSecret, { failover: false });
});

afterAll(async () => {
  await sim.close();
});

describe('inspectPreviousAttempt (what a consumer taking over a crashed attempt asks LiveKit)', () => {
  it('sees a room that does not exist as absent', async () => {
    expect(await inspectPreviousAttempt(rooms, 'call-never-1', 'sip-never')).toBe('absent');
  });

  it('follows the SIP participant from ringing to active', async () => {
    await sip.createSipParticipant(sim.outboundTrunkId, '+14155559001', 'call-x-1', { participantIdentity: 'sip-x', waitUntilAnswered: false });
    await waitFor(() => (sim.calls.some((c) => c.status === 'ringing' && c.room === 'call-x-1') ? true : undefined));
    expect(await inspectPreviousAttempt(rooms, 'call-x-1', 'sip-x')).toBe('ringing');
    await waitFor(async () => ((await inspectPreviousAttempt(rooms, 'call-x-1', 'sip-x')) === 'active' ? true : undefined));
  });

  it('treats a participant without sip.callStatus as connected, never as a reason to dial again', async () => {
    await sip.createSipParticipant(sim.outboundTrunkId, '+14155559002', 'call-y-1', { participantIdentity: 'sip-y', waitUntilAnswered: true });
    await rooms.updateParticipant('call-y-1', 'sip-y', { attributes: { 'sip.callStatus': '' } });
    const [participant] = await rooms.listParticipants('call-y-1');
    expect(participant?.attributes['sip.callStatus']).toBeUndefined();
    expect(await inspectPreviousAttempt(rooms, 'call-y-1', 'sip-y')).toBe('active');
  });
});
