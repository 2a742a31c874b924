/** Every scripted failure, as the real SDK surfaces it. */
import { ServerError, SipCallError } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIVEKIT_MAX_METADATA_BYTES, classifyDispatchError, classifySipError } from '../../src/core/classifySipError.js';
import { SECOND } from '../../src/core/time.js';
import { startLiveKitSim, waitForEvent, type Behavior, type LiveKitSim } from '../../src/sim/index.js';
import { clientsFor, rejectionOf, type SimClients } from './simClients.js';

const RINGING_TIMEOUT_S = 1;
/** How long a callee takes to answer busy when the test must read the participant before that. */
const BUSY_WHILE_READ_MS = 1500;

let sim: LiveKitSim;
let clients: SimClients;
let counter = 0;

beforeAll(async () => {
  sim = await startLiveKitSim();
  clients = clientsFor(sim);
});

afterAll(async () => {
  await sim.close();
});

function nextNumber(): string {
  counter += 1;
  return `+1555020${String(counter).padStart(4, '0')}`;
}

async function dialFailing(
  behavior: Behavior,
  waitUntilAnswered = true,
): Promise<{ err: unknown; number: string; room: string; elapsedMs: number }> {
  const number = nextNumber();
  const room = `fail-${counter}`;
  sim.network.setBehavior(number, behavior);
  const startedAt = Date.now();
  const err = await rejectionOf(
    clients.sip.createSipParticipant(sim.outboundTrunkId, number, room, { waitUntilAnswered, ringingTimeout: RINGING_TIMEOUT_S }),
  );
  return { err, number, room, elapsedMs: Date.now() - startedAt };
}

/** What the consumer would make of a dial that failed like this one. */
function classified(failed: { err: unknown; elapsedMs: number }) {
  return classifySipError(failed.err, { elapsedMs: failed.elapsedMs, ringingTimeoutMs: RINGING_TIMEOUT_S * SECOND });
}

interface SipRow {
  behavior: Behavior;
  sipStatusCode: number;
  sipStatus: string;
  httpStatus: number;
  code: string;
}

const SIP_ROWS: SipRow[] = [
  { behavior: { type: 'busy' }, sipStatusCode: 486, sipStatus: 'Busy Here', httpStatus: 429, code: 'resource_exhausted' },
  { behavior: { type: 'unavailable' }, sipStatusCode: 480, sipStatus: 'Temporarily Unavailable', httpStatus: 429, code: 'resource_exhausted' },
  { behavior: { type: 'not_found' }, sipStatusCode: 404, sipStatus: 'Not Found', httpStatus: 404, code: 'not_found' },
  { behavior: { type: 'decline', afterMs: 150 }, sipStatusCode: 603, sipStatus: 'Decline', httpStatus: 403, code: 'permission_denied' },
  { behavior: { type: 'unwanted' }, sipStatusCode: 607, sipStatus: 'Unwanted', httpStatus: 403, code: 'permission_denied' },
  { behavior: { type: 'rejected' }, sipStatusCode: 608, sipStatus: 'Rejected', httpStatus: 403, code: 'permission_denied' },
  { behavior: { type: 'trunk_auth_failure', sipStatus: 403 }, sipStatusCode: 403, sipStatus: 'Forbidden', httpStatus: 403, code: 'permission_denied' },
  { behavior: { type: 'server_error' }, sipStatusCode: 503, sipStatus: 'Service Unavailable', httpStatus: 412, code: 'failed_precondition' },
  { behavior: { type: 'server_error', sipStatus: 504 }, sipStatusCode: 504, sipStatus: 'Server Time-out', httpStatus: 408, code: 'deadline_exceeded' },
  { behavior: { type: 'sip_error', sipStatus: 484 }, sipStatusCode: 484, sipStatus: 'Address Incomplete', httpStatus: 400, code: 'invalid_argument' },
  { behavior: { type: 'sip_error', sipStatus: 600 }, sipStatusCode: 600, sipStatus: 'Busy Everywhere', httpStatus: 429, code: 'resource_exhausted' },
  { behavior: { type: 'sip_error', sipStatus: 487 }, sipStatusCode: 487, sipStatus: 'Request Terminated', httpStatus: 409, code: 'aborted' },
  { behavior: { type: 'sip_error', sipStatus: 499, reason: 'Carrier Says No' }, sipStatusCode: 499, sipStatus: 'Carrier Says No', httpStatus: 400, code: 'invalid_argument' },
];

describe('SIP failures surface as SipCallError with the LiveKit status mapping', () => {
  for (const row of SIP_ROWS) {
    it(`${row.behavior.type} → ${row.sipStatusCode} ${row.sipStatus} → HTTP ${row.httpStatus} ${row.code}`, async () => {
      const { err, room, number } = await dialFailing(row.behavior);
      expect(err).toBeInstanceOf(SipCallError);
      const sipError = err as SipCallError;
      expect(sipError.sipStatusCode).toBe(row.sipStatusCode);
      expect(sipError.sipStatus).toBe(row.sipStatus);
      expect(sipError.status).toBe(row.httpStatus);
      expect(sipError.code).toBe(row.code);
      expect(sim.participants(room)).toEqual([]);
      const record = sim.calls.find((c) => c.phoneNumber === number);
      expect(record).toMatchObject({ result: 'failed', sipStatusCode: row.sipStatusCode, httpStatus: row.httpStatus });
    });
  }
});

describe('failures without a SIP status', () => {
  it('401/407 trunk auth challenges fail as failed_precondition with no SIP status (livekit/sip answers the challenge)', async () => {
    for (const sipStatus of [401, 407] as const) {
      const { err } = await dialFailing({ type: 'trunk_auth_failure', sipStatus });
      expect(err).toBeInstanceOf(ServerError);
      expect(err).not.toBeInstanceOf(SipCallError);
      expect((err as ServerError).status).toBe(412);
      expect((err as ServerError).code).toBe('failed_precondition');
      expect((err as ServerError).message).toContain('sip server required auth');
    }
  });

  it('a trunk whose credentials are refused fails as 412 "max auth retry attempts", a trunk configuration error', async () => {
    const failed = await dialFailing({ type: 'trunk_auth_failure', sipStatus: 407, failure: 'max_retry' });
    expect(failed.err).not.toBeInstanceOf(SipCallError);
    expect(failed.err).toMatchObject({ status: 412, code: 'failed_precondition' });
    expect((failed.err as ServerError).message).toBe('twirp error unknown: max auth retry attempts reached for SIP invite');
    expect(classified(failed)).toMatchObject({ kind: 'final', outcome: 'failed', trunkConfigurationError: true });
  });

  it('both 412 trunk auth shapes are final trunk configuration errors for the dialer', async () => {
    for (const failure of ['missing_credentials', 'no_header'] as const) {
      const failed = await dialFailing({ type: 'trunk_auth_failure', failure });
      expect(failed.err).toMatchObject({ status: 412, code: 'failed_precondition' });
      expect(classified(failed)).toMatchObject({ kind: 'final', outcome: 'failed', trunkConfigurationError: true });
    }
  });

  it('a ring-out in "deadline" mode is 412 failed_precondition "context deadline exceeded" at the ringing timeout (livekit/sip#857)', async () => {
    const failed = await dialFailing({ type: 'ring_out', ringOut: 'deadline' });
    expect(failed.err).not.toBeInstanceOf(SipCallError);
    expect(failed.err).toMatchObject({ status: 412, code: 'failed_precondition' });
    expect((failed.err as ServerError).message).toBe('twirp error unknown: context deadline exceeded');
    expect(failed.elapsedMs).toBeGreaterThanOrEqual(RINGING_TIMEOUT_S * SECOND - 50);
    expect(classified(failed)).toMatchObject({ kind: 'retry', outcome: 'no_answer' });
    expect(sim.calls.find((c) => c.phoneNumber === failed.number)).toMatchObject({ result: 'failed', httpStatus: 412 });
  });

  it('a ring-out in "timeout" mode is 408 canceled "sip request timed out", also no answer', async () => {
    const failed = await dialFailing({ type: 'ring_out', ringOut: 'timeout' });
    expect(failed.err).toMatchObject({ status: 408, code: 'canceled', message: 'twirp error unknown: sip request timed out' });
    expect(classified(failed)).toMatchObject({ kind: 'retry', outcome: 'no_answer' });
  });

  it('the network-wide ring-out mode applies to callees who never answer', async () => {
    sim.network.setRingOut('deadline');
    try {
      const failed = await dialFailing({ type: 'answer', afterMs: 10 * RINGING_TIMEOUT_S * SECOND });
      expect(failed.err).toMatchObject({ status: 412, code: 'failed_precondition' });
      expect(classified(failed)).toMatchObject({ kind: 'retry', outcome: 'no_answer' });
    } finally {
      sim.network.setRingOut('timeout');
    }
  });

  it('a platform outage is HTTP 503 unavailable with no SIP status and no participant', async () => {
    const { err, room } = await dialFailing({ type: 'platform_unavailable' });
    expect(err).not.toBeInstanceOf(SipCallError);
    expect((err as ServerError).status).toBe(503);
    expect((err as ServerError).code).toBe('unavailable');
    expect((err as ServerError).metadata?.sip_status_code).toBeUndefined();
    expect(sim.rooms().find((r) => r.name === room)).toBeUndefined();
  });

  it('an unknown trunk is not_found without a SIP status, before reaching the network', async () => {
    const number = nextNumber();
    const err = await rejectionOf(clients.sip.createSipParticipant('ST_missing', number, 'no-trunk', { waitUntilAnswered: true }));
    expect(err).not.toBeInstanceOf(SipCallError);
    expect((err as ServerError).status).toBe(404);
    expect((err as ServerError).code).toBe('not_found');
    expect((err as ServerError).message).toBe('requested sip trunk does not exist');
    expect(sim.network.attempts(number)).toBe(0);
    expect(sim.calls.at(-1)).toMatchObject({ result: 'refused', phoneNumber: number, twirpCode: 'not_found' });
  });

  it('validates the request like LiveKit (missing room name → invalid_argument)', async () => {
    const err = await rejectionOf(clients.sip.createSipParticipant(sim.outboundTrunkId, nextNumber(), '', {}));
    expect((err as ServerError).status).toBe(400);
    expect((err as ServerError).message).toBe('missing room name');
  });

  it('a trunk without numbers and no fromNumber is failed_precondition', async () => {
    const trunk = await clients.sip.createSipOutboundTrunk('empty', 'sip.sim.invalid', []);
    const err = await rejectionOf(clients.sip.createSipParticipant(trunk.sipTrunkId, nextNumber(), 'no-numbers', {}));
    expect((err as ServerError).status).toBe(412);
    const ok = await clients.sip.createSipParticipant(trunk.sipTrunkId, nextNumber(), 'with-from', { fromNumber: '+15550109999' });
    expect(ok.roomName).toBe('with-from');
  });
});

describe('waitUntilAnswered false', () => {
  it('returns at once and the failure shows only as the participant leaving', async () => {
    const number = nextNumber();
    // Long enough that the participant is still dialing when the test reads it, even on a loaded machine (200 ms was
    // not: the read came after the busy and found the room empty).
    sim.network.setBehavior(number, { type: 'busy', afterMs: BUSY_WHILE_READ_MS });
    const info = await clients.sip.createSipParticipant(sim.outboundTrunkId, number, 'async-busy', { participantIdentity: 'callee' });
    expect(info.participantIdentity).toBe('callee');
    const before = await clients.rooms.listParticipants('async-busy');
    expect(before[0]?.attributes['sip.callStatus']).toBe('dialing');
    const left = await waitForEvent(sim.events, 'participant_left', (e) => e.room === 'async-busy');
    expect(left.reason).toBe('USER_REJECTED');
    expect(await clients.rooms.listParticipants('async-busy')).toEqual([]);
  });
});

describe('CreateDispatch refusals, as livekit-server answers them', () => {
  it('refuses metadata over 512 KiB with 400 invalid_argument, which ends the call instead of backing off', async () => {
    const room = `dispatch-big-${nextNumber()}`;
    const err = await rejectionOf(
      clients.dispatch.createDispatch(room, 'telephony-agent', { metadata: 'x'.repeat(LIVEKIT_MAX_METADATA_BYTES + 1) }),
    );
    expect(err).toMatchObject({ status: 400, code: 'invalid_argument', message: 'twirp error unknown: metadata size exceeds limits' });
    expect(classifyDispatchError(err)).toMatchObject({ kind: 'final', outcome: 'failed', livekitConfigurationError: false });
    expect(sim.dispatches.find((d) => d.room === room)).toBeUndefined();
  });

  it('counts metadata in UTF-8 bytes and accepts exactly the limit', async () => {
    const room = `dispatch-limit-${nextNumber()}`;
    const dispatch = await clients.dispatch.createDispatch(room, 'telephony-agent', { metadata: 'x'.repeat(LIVEKIT_MAX_METADATA_BYTES) });
    expect(dispatch.room).toBe(room);
    const multiByte = 'é'.repeat(LIVEKIT_MAX_METADATA_BYTES / 2 + 1); // 2 bytes each: one pair over the limit
    const err = await rejectionOf(clients.dispatch.createDispatch(`${room}-utf8`, 'telephony-agent', { metadata: multiByte }));
    expect(err).toMatchObject({ status: 400, code: 'invalid_argument' });
  });

  it('refuses a body over 10 MiB with a plain-text 413 before reading it, also final', async () => {
    const err = await rejectionOf(
      clients.dispatch.createDispatch(`dispatch-huge-${nextNumber()}`, 'telephony-agent', { metadata: 'x'.repeat(11 * 1024 * 1024) }),
    );
    expect(err).toBeInstanceOf(ServerError);
    expect(err).toMatchObject({ status: 413, code: undefined, message: 'request body too large' });
    expect(classifyDispatchError(err)).toMatchObject({ kind: 'final', outcome: 'failed', httpStatus: 413 });
  });

  it('a wrong API secret is a plain-text 401: final, and flagged as a LiveKit settings problem', async () => {
    const wrong = clientsFor(sim, 'not-the-secret');
    const err = await rejectionOf(wrong.dispatch.createDispatch(`dispatch-auth-${nextNumber()}`, 'telephony-agent'));
    expect(err).toMatchObject({ status: 401, code: undefined });
    expect(classifyDispatchError(err)).toMatchObject({ kind: 'final', livekitConfigurationError: true });
  });
});
