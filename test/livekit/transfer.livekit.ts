import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CallRecord } from '../../src/core/callStore.js';
import { SECOND } from '../../src/core/time.js';
import { waitFor } from '../helpers/waitFor.js';
import { CALLEE_WORDS, startAgentRig, voicedMs, type AgentRig } from './agentRig.js';
import { startRtpCapture, type RtpCapture } from './rtpCapture.js';
import type { SippCallee, SippMessage } from './sipp.js';
import { calleeScenario, type CalleeStep } from './sippScenarios.js';
import type { ChatView, ScriptedReply } from './speechServer.js';

/**
 * Cold transfers through real livekit-sip: the agent's transfer_call sends a SIP REFER to sipp.
 * - accepted: sipp answers 202 and NOTIFYs a 200 sipfrag; livekit-sip hangs up, the outcome is `transferred`;
 * - rejected: sipp answers 603; the model is told "could not transfer call", apologises, the call goes on and ends
 *   with end_call (`answered`);
 * - keypad menu: sipp presses 1 (an RFC 2833 event from sip-tester's pcap); the agent hears "[keypad] … pressed 1"
 *   and transfers to that menu entry's destination.
 * Written to <workdir>/transfer.json.
 */
const CALLEE_SENTENCE = 'Yes, speaking.';
const FRONT_DESK = 'tel:+12025550100';
const BILLING = 'sip:billing@pbx.example.com';
const APOLOGY = 'Sorry, I could not connect you. Goodbye.';
const STACK_IP = process.env.LIVEKIT_STACK_IP ?? '10.77.0.1';
const TEST_TIMEOUT_MS = 240 * SECOND;

let rig: AgentRig | undefined;
let callee: SippCallee | undefined;
let capture: RtpCapture | undefined;
const observed: Record<string, unknown>[] = [];

/** The call's model, per scenario: what it does when it hears the callee (or a keypad press). */
function script(onCallee: (chat: ChatView) => ScriptedReply) {
  return {
    vocabulary: CALLEE_WORDS,
    reply: (chat: ChatView): ScriptedReply => {
      if (chat.afterTool) {
        const toolOutput = JSON.stringify(chat.messages.at(-1)?.content ?? '');
        // a failed transfer: apologise and hang up; anything else needs no words
        return /could not transfer call/.test(toolOutput) ? { text: APOLOGY, toolCall: { name: 'end_call', args: {} } } : { text: '' };
      }
      return onCallee(chat);
    },
  };
}

beforeAll(async () => {
  rig = await startAgentRig({
    name: 'transfer',
    agentHttpPort: 8184,
    profiles: {
      default: {
        instructions: 'You are the receptionist of Acme.',
        transfer: {
          mode: 'cold',
          announcement: 'Please hold.',
          defaultDestination: 'front-desk',
          destinations: {
            'front-desk': { target: FRONT_DESK, description: 'a person at the front desk' },
            billing: { target: BILLING, description: 'invoices' },
          },
        },
        dtmfMenu: [{ digit: '1', label: 'billing', destination: 'billing' }],
      },
    },
    script: script(() => ({ text: 'Sorry?' })),
    agentEnv: { AGENT_TRANSFER_CONFIRM_TIMEOUT_S: '10' },
  });
}, 240 * SECOND);

afterEach(async () => {
  await capture?.stop();
  await callee?.stop();
  capture = undefined;
  callee = undefined;
});

afterAll(async () => {
  await rig?.close();
  if (rig) writeFileSync(join(rig.stack.workDir, 'transfer.json'), JSON.stringify(observed, null, 2));
});

interface CallRun {
  record: CallRecord;
  refer: SippMessage | undefined;
  bye: SippMessage | undefined;
  callee: SippCallee;
  cuedAt: number;
  packets: Awaited<ReturnType<RtpCapture['stop']>>;
}

/** One call to sipp with `steps` after its answer; cues it once the agent publishes; returns what both ends saw. */
async function call(name: string, steps: CalleeStep[], phoneNumber: string): Promise<CallRun> {
  if (!rig) throw new Error('rig not started');
  const r = rig;
  callee = await r.startCallee(calleeScenario(name, steps), { 'callee.wav': { text: CALLEE_SENTENCE, trailingSilenceS: 60 } });
  capture = await startRtpCapture({ port: r.calleeMediaPort, workDir: join(r.stack.workDir, 'transfer') });
  const { callId } = await r.dialer.producer.enqueueCall({ phoneNumber, campaignId: 'lk-transfer' });
  await r.agentPublishing(`call-${callId}-1`);
  await callee.cue(STACK_IP);
  const cuedAt = Date.now();
  const record = await r.dialer.waitForOutcome('lk-transfer', callId, 120 * SECOND);
  const c = callee;
  const bye = await waitFor(() => c.messages().find((m) => m.direction === 'received' && m.startLine.startsWith('BYE ')), 20 * SECOND, 'BYE at sipp');
  await r.roomGone(callId);
  const packets = await capture.stop();
  capture = undefined;
  const refer = c.messages().find((m) => m.direction === 'received' && m.startLine.startsWith('REFER '));
  return { record, refer, bye, callee: c, cuedAt, packets };
}

function row(name: string, run: CallRun, extra: Record<string, unknown> = {}) {
  const sippSaw = run.callee.messages().map((m) => `${m.direction} ${m.startLine}`);
  const entry = {
    case: name,
    outcome: run.record.outcome,
    reason: run.record.reason,
    transfer: run.record.details?.transfer,
    referTo: run.refer?.headers.get('refer-to'),
    referredBy: run.refer?.headers.get('referred-by'),
    byeAfterReferMs: run.refer && run.bye ? run.bye.at - run.refer.at : null,
    sippSaw,
    transcript: run.record.details?.transcript,
    ...extra,
  };
  observed.push(entry);
  process.stderr.write(`[transfer] ${JSON.stringify(entry)}\n`);
  return entry;
}

describe('cold transfer (SIP REFER) through real livekit-sip', () => {
  it('an accepted REFER (202 + NOTIFY 200): Refer-To carries the destination, livekit-sip hangs up, outcome transferred', async () => {
    rig?.speech.setScript(script((chat) => (chat.lastUser.trim() !== '' ? { toolCall: { name: 'transfer_call', args: { destination: 'front-desk' } } } : { text: 'Sorry?' })));
    const run = await call('refer-accept', [{ kind: 'cue' }, { kind: 'say', file: 'callee.wav' }, { kind: 'refer', answer: 'accept' }, { kind: 'awaitBye', timeoutMs: 30_000 }], '+14155550140');
    const entry = row('accepted', run);
    expect(run.refer).toBeDefined();
    expect(entry.referTo).toContain('+12025550100');
    expect(run.record.outcome).toBe('transferred');
    expect(run.record.details?.transfer).toEqual({ mode: 'cold', target: FRONT_DESK });
    // the agent announced the transfer before the REFER
    expect(voicedMs(run.packets.filter((p) => p.at > run.cuedAt && p.at < (run.refer?.at ?? 0)))).toBeGreaterThan(0);
  }, TEST_TIMEOUT_MS);

  it('a rejected REFER (603): the model hears "could not transfer call", apologises, and the call goes on until end_call', async () => {
    rig?.speech.setScript(script((chat) => (chat.lastUser.trim() !== '' ? { toolCall: { name: 'transfer_call', args: { destination: 'front-desk' } } } : { text: 'Sorry?' })));
    const run = await call(
      'refer-reject',
      [{ kind: 'cue' }, { kind: 'say', file: 'callee.wav' }, { kind: 'refer', answer: { code: 603, reason: 'Decline' } }, { kind: 'awaitBye', timeoutMs: 60_000 }],
      '+14155550141',
    );
    const toolResults = (rig?.speech.events ?? [])
      .filter((e) => e.type === 'chat' && e.at > run.cuedAt)
      .map((e) => (e.type === 'chat' ? e.reply : undefined));
    const apologyHeard = voicedMs(run.packets.filter((p) => p.at > (run.refer?.at ?? Infinity) && p.at < (run.bye?.at ?? 0)));
    const entry = row('rejected 603', run, { apologyHeardMs: apologyHeard });
    expect(run.refer).toBeDefined();
    expect(run.record.outcome).toBe('answered');
    expect(run.record.reason).toBe('agent ended the call');
    expect(JSON.stringify(entry.transcript)).toMatch(/could not transfer call/);
    expect(toolResults.some((reply) => reply?.text === APOLOGY)).toBe(true);
    // the call went on after the refusal: the apology reached sipp before the agent hung up
    expect(apologyHeard).toBeGreaterThan(0);
  }, TEST_TIMEOUT_MS);

  it('a keypad press (RFC 2833 "1") picks the menu entry: the agent transfers to billing', async () => {
    rig?.speech.setScript(
      script((chat) =>
        /\[keypad\].*pressed 1/.test(chat.lastUser) ? { toolCall: { name: 'transfer_call', args: { destination: 'billing' } } } : { text: '' },
      ),
    );
    const run = await call('keypad-menu', [{ kind: 'cue' }, { kind: 'dtmf', digit: '1' }, { kind: 'refer', answer: 'accept' }, { kind: 'awaitBye', timeoutMs: 30_000 }], '+14155550142');
    const keypadTurns = (rig?.speech.events ?? []).filter((e) => e.type === 'chat' && e.at > run.cuedAt && e.lastUser.includes('[keypad]'));
    const entry = row('keypad 1 → billing', run, { keypadTurns: keypadTurns.map((e) => (e.type === 'chat' ? e.lastUser : '')) });
    expect(keypadTurns.length).toBeGreaterThan(0);
    expect(entry.referTo).toContain('billing@pbx.example.com');
    expect(run.record.outcome).toBe('transferred');
    expect(run.record.details?.transfer).toEqual({ mode: 'cold', target: BILLING });
  }, TEST_TIMEOUT_MS);
});
