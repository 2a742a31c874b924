import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ServerError } from 'livekit-server-sdk';
import { classifySipError, type DialFailure } from '../../src/core/classifySipError.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import type { Behavior } from '../../src/sim/scenarioSchema.js';
import { SECOND } from '../../src/core/time.js';
import { liveClients, liveStack, rawCreateSipParticipant, trunkTo } from './liveStack.js';
import { startSippCallee, type SippCallee, type SippScenario } from './sipp.js';

/**
 * What real LiveKit (livekit-server v1.13.5 + livekit-sip v1.8.0) answers CreateSIPParticipant with
 * (waitUntilAnswered) when the far end is busy, declines, does not exist, or rings out; each case is called twice,
 * once raw (to keep LiveKit's exact HTTP body) and once through livekit-server-sdk, whose error goes through the
 * dialer's classifySipError. The same raw request goes to src/sim with the matching scripted behaviour, and its
 * answer must be the same (status, Twirp code, message, metadata): the simulator follows reality. Observed shapes
 * are written to <workdir>/dial-errors.json.
 */
const RING_OUT_TIMEOUT_S = 6;
/** Generous bound for a rejected call: sipp answers at once (decline rings 1 s first). */
const REJECT_BOUND_MS = 5 * SECOND;

interface Case {
  name: string;
  scenario: SippScenario;
  port: number;
  ringingTimeoutS: number;
  expected: { outcome: string; sipStatusCode?: number };
  /** The src/sim behaviour that stands for this far end. */
  sim: Behavior;
  /** What LiveKit sent, as observed: HTTP status, Twirp code, message, SIP status metadata (none on a ring-out). */
  wire: { status: number; code: string; msg: string; sipStatusCode?: string; sipStatus?: string };
}

const CASES: Case[] = [
  {
    name: '486 busy',
    scenario: 'busy',
    port: 5071,
    ringingTimeoutS: 20,
    expected: { outcome: 'busy', sipStatusCode: 486 },
    sim: { type: 'busy' },
    wire: { status: 429, code: 'resource_exhausted', msg: 'twirp error unknown: INVITE failed: sip status: 486: Busy Here', sipStatusCode: '486', sipStatus: 'Busy Here' },
  },
  {
    name: '603 decline (after 180 Ringing)',
    scenario: 'decline',
    port: 5072,
    ringingTimeoutS: 20,
    expected: { outcome: 'declined', sipStatusCode: 603 },
    sim: { type: 'decline' },
    wire: {
      status: 403,
      code: 'permission_denied',
      msg: 'twirp error unknown: unexpected status from INVITE response: sip status: 603: Decline',
      sipStatusCode: '603',
      sipStatus: 'Decline',
    },
  },
  {
    name: '404 not found',
    scenario: 'not-found',
    port: 5073,
    ringingTimeoutS: 20,
    expected: { outcome: 'invalid_number', sipStatusCode: 404 },
    sim: { type: 'not_found' },
    wire: { status: 404, code: 'not_found', msg: 'twirp error unknown: INVITE failed: sip status: 404: Not Found', sipStatusCode: '404', sipStatus: 'Not Found' },
  },
  {
    name: 'ring-out (180, never answered)',
    scenario: 'ring-out',
    port: 5074,
    ringingTimeoutS: RING_OUT_TIMEOUT_S,
    expected: { outcome: 'no_answer' },
    sim: { type: 'ring_out', ringOut: 'timeout' },
    wire: { status: 408, code: 'canceled', msg: 'twirp error unknown: sip request timed out' },
  },
];

interface Observation {
  case: string;
  raw: { status: number; body: unknown; elapsedMs: number };
  sdk: { status: number; code?: string; message: string; metadata?: Record<string, string>; elapsedMs: number };
  classified: DialFailure;
  sippSaw: string[];
}

const observations: Observation[] = [];
let callee: SippCallee | undefined;
let sim: LiveKitSim | undefined;

afterEach(async () => {
  await callee?.stop();
  await sim?.close();
  callee = undefined;
  sim = undefined;
});

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // LiveKit answered with something other than JSON: keep the text
  }
}

afterAll(() => {
  const stack = liveStack();
  writeFileSync(join(stack.workDir, 'dial-errors.json'), JSON.stringify(observations, null, 2));
});

describe('CreateSIPParticipant failures from real livekit-sip, far end played by sipp', () => {
  for (const c of CASES) {
    it(`${c.name}: LiveKit's error is classified ${c.expected.outcome}`, async () => {
      const stack = liveStack();
      const { sip } = liveClients(stack);
      callee = await startSippCallee({ scenario: c.scenario, ip: stack.farIp, port: c.port, workDir: stack.workDir });
      const trunkId = await trunkTo(callee, `test-${c.scenario}`);
      try {
        const request = {
          sip_call_to: '+15550100001',
          room_name: `raw-${c.scenario}`,
          participant_identity: 'sip-raw',
          wait_until_answered: true,
          ringing_timeout: `${c.ringingTimeoutS}s`,
        };
        const raw = await rawCreateSipParticipant({ ...request, sip_trunk_id: trunkId }, (c.ringingTimeoutS + 30) * SECOND);

        const started = performance.now();
        const err: unknown = await sip
          .createSipParticipant(trunkId, '+15550100002', `sdk-${c.scenario}`, {
            participantIdentity: 'sip-sdk',
            waitUntilAnswered: true,
            ringingTimeout: c.ringingTimeoutS,
          })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        const elapsedMs = performance.now() - started;
        expect(err).toBeInstanceOf(ServerError);
        if (!(err instanceof ServerError)) return;
        const classified = classifySipError(err, { elapsedMs, ringingTimeoutMs: c.ringingTimeoutS * SECOND });
        const body = parseBody(raw.body);
        observations.push({
          case: c.name,
          raw: { status: raw.status, body, elapsedMs: Math.round(raw.elapsedMs) },
          sdk: { status: err.status, code: err.code, message: err.message, metadata: err.metadata, elapsedMs: Math.round(elapsedMs) },
          classified,
          sippSaw: callee.messages().map((m) => `${m.direction} ${m.startLine}`),
        });
        process.stderr.write(`[dial-errors] ${JSON.stringify(observations.at(-1))}\n`);

        expect(raw.status).toBe(c.wire.status);
        expect(body).toMatchObject({ code: c.wire.code, msg: c.wire.msg });
        const meta = (body as { meta?: Record<string, string> }).meta;
        expect(meta?.sip_status_code).toBe(c.wire.sipStatusCode);
        expect(meta?.sip_status).toBe(c.wire.sipStatus);
        expect({ status: err.status, code: err.code }).toEqual({ status: c.wire.status, code: c.wire.code });
        expect(err.metadata?.sip_status_code).toBe(c.wire.sipStatusCode);
        expect(callee.invites()).toHaveLength(2);
        expect(classified).toMatchObject(c.expected);

        // the simulator, asked the same, answers the same
        sim = await startLiveKitSim({ network: { numbers: { [request.sip_call_to]: c.sim } } });
        const simRaw = await rawCreateSipParticipant({ ...request, sip_trunk_id: sim.outboundTrunkId }, (c.ringingTimeoutS + 30) * SECOND, sim);
        expect({ status: simRaw.status, body: parseBody(simRaw.body) }).toEqual({ status: raw.status, body });
        if (c.scenario === 'ring-out') expect(elapsedMs).toBeGreaterThanOrEqual(c.ringingTimeoutS * SECOND - 500);
        else expect(elapsedMs).toBeLessThan(REJECT_BOUND_MS);
      } finally {
        await sip.deleteSipTrunk(trunkId);
      }
    });
  }
});
