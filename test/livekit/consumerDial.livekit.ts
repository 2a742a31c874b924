import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SECOND } from '../../src/core/time.js';
import { liveClients, liveStack, trunkTo } from './liveStack.js';
import { startSippCallee, type SippCallee, type SippScenario } from './sipp.js';
import { startLiveDialer, type LiveDialer } from './dialerPipeline.js';

/**
 * The consumer (startDialWorker, the library's dial path) dialing through real livekit-sip: each far-end answer
 * ends in the right outcome after the right number of INVITEs (DIAL_MAX_ATTEMPTS=2, so a retryable answer rings
 * twice and a final one once). Outcomes are written to <workdir>/consumer-dial.json.
 */
const RINGING_TIMEOUT_S = 6;

interface Case {
  name: string;
  scenario: SippScenario;
  port: number;
  outcome: string;
  invites: number;
  sipStatusCode?: number;
}

const CASES: Case[] = [
  { name: '486 busy', scenario: 'busy', port: 5081, outcome: 'busy', invites: 2, sipStatusCode: 486 },
  { name: '603 decline', scenario: 'decline', port: 5082, outcome: 'declined', invites: 1, sipStatusCode: 603 },
  { name: '404 not found', scenario: 'not-found', port: 5083, outcome: 'invalid_number', invites: 1, sipStatusCode: 404 },
  { name: 'ring-out', scenario: 'ring-out', port: 5084, outcome: 'no_answer', invites: 2 },
];

const observed: Record<string, unknown>[] = [];
let callee: SippCallee | undefined;
let dialer: LiveDialer | undefined;
let trunkId: string | undefined;

afterEach(async () => {
  await dialer?.close();
  await callee?.stop();
  if (trunkId) await liveClients().sip.deleteSipTrunk(trunkId);
  dialer = undefined;
  callee = undefined;
  trunkId = undefined;
});

afterAll(() => {
  writeFileSync(join(liveStack().workDir, 'consumer-dial.json'), JSON.stringify(observed, null, 2));
});

describe('the consumer dialing through real livekit-sip', () => {
  for (const c of CASES) {
    it(`${c.name}: ends ${c.outcome} after ${c.invites} INVITE(s)`, async () => {
      const stack = liveStack();
      callee = await startSippCallee({ scenario: c.scenario, ip: stack.farIp, port: c.port, workDir: stack.workDir });
      trunkId = await trunkTo(callee, `consumer-${c.scenario}`);
      dialer = await startLiveDialer(`lk-${c.scenario}`, stack, trunkId, { env: { DIAL_RINGING_TIMEOUT_S: String(RINGING_TIMEOUT_S) } });
      const started = performance.now();
      const { callId } = await dialer.producer.enqueueCall({ phoneNumber: '+14155550123', campaignId: `lk-${c.scenario}` });
      const record = await dialer.waitForOutcome(`lk-${c.scenario}`, callId, 4 * RINGING_TIMEOUT_S * SECOND);
      const elapsedMs = Math.round(performance.now() - started);
      observed.push({
        case: c.name,
        outcome: record.outcome,
        reason: record.reason,
        attempts: record.attempts,
        sipStatusCode: record.sipStatusCode,
        sipStatus: record.sipStatus,
        attemptLog: record.attemptLog,
        invites: callee.invites().length,
        elapsedMs,
      });
      process.stderr.write(`[consumer-dial] ${JSON.stringify(observed.at(-1))}\n`);

      expect(record.outcome).toBe(c.outcome);
      expect(record.attempts).toBe(c.invites);
      if (c.sipStatusCode) expect(record.sipStatusCode).toBe(c.sipStatusCode);
      expect(callee.invites()).toHaveLength(c.invites);
      // the attempt rooms are gone: nothing was left for an agent to join
      const rooms = await liveClients(stack).rooms.listRooms();
      expect(rooms.filter((r) => r.name.includes(callId))).toEqual([]);
    });
  }
});
