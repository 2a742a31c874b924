import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SECOND } from '../../src/core/time.js';
import { startCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';
import { liveClients, liveStack, rawCreateSipParticipant, trunkTo } from './liveStack.js';
import { startSippCallee, type SippCallee, type SippMessage } from './sipp.js';
import { startLiveDialer, type LiveDialer } from './dialerPipeline.js';

/**
 * A consumer SIGKILLed while the phone rings, and an HTTP client that gives up while it rings: does the phone ring
 * twice, and does LiveKit cancel the INVITE when the client that asked for it is gone? Written to
 * <workdir>/crash.json.
 */
const RINGING_TIMEOUT_S = 10;
/**
 * Long enough that the second consumer (a cold `dialer consumer` start, about 9 s on this loaded machine, plus the
 * stalled-job check) takes the call over while it still rings, so the take-over follows a ringing call.
 */
const CRASH_RINGING_TIMEOUT_S = 25;
const observed: Record<string, unknown>[] = [];
let callee: SippCallee | undefined;
let dialer: LiveDialer | undefined;
let trunkId: string | undefined;
const children: ReturnType<typeof startCli>[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.child.exitCode === null && c.child.signalCode === null) {
      c.child.kill('SIGKILL');
      await c.done;
    }
  }
  await dialer?.close();
  await callee?.stop();
  if (trunkId) await liveClients().sip.deleteSipTrunk(trunkId);
  dialer = undefined;
  callee = undefined;
  trunkId = undefined;
});

afterAll(() => {
  writeFileSync(join(liveStack().workDir, 'crash.json'), JSON.stringify(observed, null, 2));
});

function received(messages: SippMessage[], method: string): SippMessage[] {
  return messages.filter((m) => m.direction === 'received' && m.startLine.startsWith(`${method} `));
}

describe('a dial whose requester disappears while the phone rings', () => {
  it('an HTTP client that gives up: LiveKit keeps ringing until its own ringing timeout', async () => {
    const stack = liveStack();
    const { rooms } = liveClients(stack);
    callee = await startSippCallee({ scenario: 'ring-out', ip: stack.farIp, port: 5091, workDir: stack.workDir });
    trunkId = await trunkTo(callee, 'client-gives-up');
    const clientTimeoutMs = 2 * SECOND;
    const room = 'client-gives-up';
    const started = Date.now();
    // raw HTTP with our own abort: the SDK stretches its request timeout to the ringing timeout when waiting for
    // the answer, so it cannot walk away early
    const request = rawCreateSipParticipant(
      {
        sip_trunk_id: trunkId,
        sip_call_to: '+14155550124',
        room_name: room,
        participant_identity: 'sip-gives-up',
        wait_until_answered: true,
        ringing_timeout: `${RINGING_TIMEOUT_S}s`,
      },
      clientTimeoutMs,
    ).then(
      (reply) => `answered ${reply.status}`,
      (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)),
    );
    // what LiveKit shows of the ringing call, every 500 ms until the CANCEL
    const seen: { afterMs: number; participants: { identity: string; state: number; callStatus?: string }[] }[] = [];
    let cancel: SippMessage | undefined;
    const deadline = started + (RINGING_TIMEOUT_S + 10) * SECOND;
    while (!cancel && Date.now() < deadline) {
      const participants = await rooms.listParticipants(room).catch(() => []);
      seen.push({
        afterMs: Date.now() - started,
        participants: participants.map((p) => ({ identity: p.identity, state: p.state, callStatus: p.attributes['sip.callStatus'] })),
      });
      cancel = received(callee.messages(), 'CANCEL')[0];
      await new Promise((r) => setTimeout(r, 500));
    }
    const clientResult = await request;
    expect(cancel).toBeDefined();
    if (!cancel) return;
    const row = {
      case: 'HTTP client aborts after 2 s, ringing timeout 10 s',
      clientResult,
      cancelAfterStartMs: cancel.at - started,
      invites: callee.invites().length,
      participantsWhileRinging: seen.map((s) => `${s.afterMs}ms: ${s.participants.map((p) => `${p.identity}(state ${p.state}, ${p.callStatus ?? '-'})`).join(',') || 'none'}`),
    };
    observed.push(row);
    process.stderr.write(`[crash] ${JSON.stringify(row)}\n`);
    expect(callee.invites()).toHaveLength(1);
    expect(row.cancelAfterStartMs).toBeGreaterThanOrEqual(RINGING_TIMEOUT_S * SECOND - SECOND);
  });

  it('a consumer SIGKILLed while sipp rings: another consumer takes the call over and the phone rang once', async () => {
    const stack = liveStack();
    callee = await startSippCallee({ scenario: 'ring-out', ip: stack.farIp, port: 5092, workDir: stack.workDir });
    trunkId = await trunkTo(callee, 'consumer-crash');
    dialer = await startLiveDialer('lk-crash', stack, trunkId, {
      dialers: 0,
      env: { DIAL_MAX_ATTEMPTS: '1', DIAL_RINGING_TIMEOUT_S: String(CRASH_RINGING_TIMEOUT_S), DIAL_LOCK_DURATION_MS: '2000' },
    });
    const cliEnv = { ...dialer.env, LOG_LEVEL: 'info' };
    const first = startCli(['consumer'], cliEnv);
    children.push(first);
    const { callId } = await dialer.producer.enqueueCall({ phoneNumber: '+14155550125', campaignId: 'lk-crash' });
    // a cold `dialer consumer` start under tsx takes seconds when the machine is quiet, over a minute when it is not
    await waitFor(() => (callee?.invites().length ? true : undefined), 150 * SECOND, 'INVITE at sipp');
    await new Promise((r) => setTimeout(r, SECOND)); // ringing
    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    await first.done;

    const second = startCli(['consumer'], cliEnv);
    children.push(second);
    const record = await dialer.waitForOutcome('lk-crash', callId, (2 * CRASH_RINGING_TIMEOUT_S + 150) * SECOND);
    const cancel = received(callee.messages(), 'CANCEL')[0];
    const row = {
      case: `consumer SIGKILLed 1 s into ringing, ringing timeout ${CRASH_RINGING_TIMEOUT_S} s`,
      outcome: record.outcome,
      reason: record.reason,
      attempts: record.attempts,
      attemptLog: record.attemptLog,
      invites: callee.invites().length,
      cancelAfterKillMs: cancel ? cancel.at - killedAt : null,
      outcomeAfterKillMs: (record.endedAt ?? Date.now()) - killedAt,
      // what the consumer that took over logged about the call, with times relative to the kill
      takeoverLog: second
        .output()
        .stderr.split('\n')
        .filter((l) => l.includes(callId))
        .map((l) => {
          const entry = JSON.parse(l) as { time?: number; msg?: string; state?: string };
          return `${(entry.time ?? killedAt) - killedAt}ms ${entry.msg ?? ''}${entry.state ? ` (${entry.state})` : ''}`;
        }),
    };
    observed.push(row);
    process.stderr.write(`[crash] ${JSON.stringify(row)}\n`);
    if (row.invites !== 1) process.stderr.write(`[crash] consumer logs:\n${first.output().stderr}\n---\n${second.output().stderr}\n`);
    // the phone rang once for this attempt, never twice; which never-connected outcome the takeover writes is the
    // dialer's policy (reported in the row above)
    expect(callee.invites()).toHaveLength(1);
    expect(record.attempts).toBe(1);
    expect(['no_answer', 'failed']).toContain(record.outcome);
  }, 360 * SECOND);
});
