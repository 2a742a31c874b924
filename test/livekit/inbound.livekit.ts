import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND } from '../../src/core/time.js';
import { runCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';
import { makeAudio, referenceVoicedMs, startAgentRig, voicedMs, VOICED_PACKET_RMS, type AgentRig } from './agentRig.js';
import { liveClients } from './liveStack.js';
import { decodePcmu, packetRms, startRtpCapture, type RtpCapture } from './rtpCapture.js';
import { startSippCallee, type SippCallee } from './sipp.js';
import { callerScenario } from './sippScenarios.js';
import { recognisePcm } from './speechServer.js';

/**
 * An inbound call: an inbound trunk for +15550001000, the dispatch rule made by `dialer setup inbound` (from the
 * shipped dispatch-rule.json: individual `call-` rooms, the support-line profile), and sipp calling that number at
 * livekit-sip. The rule brings the production agent, which greets; the greeting reaches sipp (captured, measured,
 * recognised); sipp hangs up; the outcome is reported under the inbound call id (`in-` + 16 hex of the room name's
 * SHA-256, README "Inbound calls"), campaign `inbound`. Written to <workdir>/inbound.json.
 */
const TRUNK_NUMBER = '+15550001000';
const CALLER = '+14155550160';
const GREETING = 'Hello, this is Acme. See you soon.';
const GREETING_INSTRUCTIONS = 'Greet the caller and say they reached Acme.';
/** The model greets once; later turns (the caller's silence, noise) get no words. */
let greeted = 0;
const CALLER_PORT = 5202;
const CALLER_MEDIA_PORT = 16210;
const SIP_PORT = 5060;
const STACK_IP = process.env.LIVEKIT_STACK_IP ?? '10.77.0.1';
/** After the greeting's audio was asked for, how long the caller listens before hanging up. */
const LISTEN_AFTER_GREETING_MS = 6 * SECOND;
const TEST_TIMEOUT_MS = 240 * SECOND;

let rig: AgentRig | undefined;
let caller: SippCallee | undefined;
let capture: RtpCapture | undefined;
let inboundTrunkId: string | undefined;
let ruleId: string | undefined;

beforeAll(async () => {
  rig = await startAgentRig({
    name: 'inbound',
    agentHttpPort: 8186,
    profiles: {
      default: { instructions: 'You are Alex.' },
      'support-line': {
        instructions: 'You are the phone receptionist of Acme.',
        greeting: GREETING_INSTRUCTIONS,
      },
    },
    script: {
      vocabulary: ['hello', 'yes speaking'],
      // the greeting turn: generateReply with the profile's greeting instructions (they reach the model as a
      // system or user message, depending on agents-js; either way the caller has said nothing yet)
      reply: (chat) => {
        if (chat.afterTool) return { text: '' };
        const greetingTurn = chat.lastUser === '' || chat.lastUser.includes(GREETING_INSTRUCTIONS) || chat.system.includes(GREETING_INSTRUCTIONS);
        return greetingTurn && !greeted++ ? { text: GREETING } : { text: '' };
      },
    },
  });
}, 240 * SECOND);

afterAll(async () => {
  await capture?.stop();
  await caller?.stop();
  const sip = liveClients().sip;
  if (ruleId) await sip.deleteSipDispatchRule(ruleId);
  if (inboundTrunkId) await sip.deleteSipTrunk(inboundTrunkId);
  await rig?.close();
});

describe('an inbound call through the dispatch rule `dialer setup inbound` makes', () => {
  it('brings the agent, which greets the caller; the caller hangs up; outcome answered under the inbound call id', async () => {
    if (!rig) throw new Error('rig not started');
    const r = rig;
    const { sip, rooms } = liveClients(r.stack);
    inboundTrunkId = (await sip.createSipInboundTrunk('lk-inbound', [TRUNK_NUMBER])).sipTrunkId;
    const setup = await runCli(['setup', 'inbound', '--trunk', inboundTrunkId], { ...r.dialer.env, LOG_LEVEL: 'warn' });
    expect(setup.code, setup.stderr).toBe(0);
    ruleId = setup.stdout.trim();
    expect(ruleId).toMatch(/^SDR_/);

    const dir = join(r.stack.workDir, 'inbound', 'caller');
    mkdirSync(dir, { recursive: true });
    makeAudio(join(dir, 'silence.wav'), { trailingSilenceS: 1 });
    capture = await startRtpCapture({ port: CALLER_MEDIA_PORT, workDir: dir });
    const started = Date.now();
    caller = await startSippCallee({
      scenario: callerScenario('inbound-caller', CALLER),
      ip: r.calleeIp,
      port: CALLER_PORT,
      mediaPort: CALLER_MEDIA_PORT,
      workDir: dir,
      call: { remote: `${STACK_IP}:${SIP_PORT}`, service: TRUNK_NUMBER },
    });
    const c = caller;
    const answered = await waitFor(
      () => c.messages().find((m) => m.direction === 'received' && m.startLine.startsWith('SIP/2.0 200')),
      60 * SECOND,
      '200 OK at the caller',
    );
    const room = await waitFor(async () => (await rooms.listRooms()).find((rm) => rm.name.startsWith('call-'))?.name, 30 * SECOND, 'inbound room');
    const callId = `in-${createHash('sha256').update(room).digest('hex').slice(0, 16)}`;
    // agents-js asks for speech sentence by sentence: the greeting's first sentence marks its start
    const tts = await waitFor(() => r.speech.events.find((e) => e.type === 'tts' && GREETING.startsWith(e.text.trim())), 90 * SECOND, 'the greeting');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, tts.at + LISTEN_AFTER_GREETING_MS - Date.now())));
    await c.cue(STACK_IP);
    const exitCode = await c.exited();
    const record = await r.dialer.waitForOutcome('inbound', callId, 60 * SECOND);
    await r.roomGone(room);
    const packets = await capture.stop();
    capture = undefined;
    const heard = packets.filter((p) => p.at > answered.at);
    const firstVoiced = heard.find((p) => p.payloadType === 0 && packetRms(p) > VOICED_PACKET_RMS);
    const heardDir = join(r.stack.workDir, 'inbound', 'far-end');
    mkdirSync(heardDir, { recursive: true });
    const row = {
      room: room.replace(/\d{7,}/g, (d) => `…${d.slice(-4)}`),
      callId,
      ruleId,
      answeredAfterInviteMs: answered.at - started,
      greetingAfterAnswerMs: firstVoiced ? Math.round(firstVoiced.at - answered.at) : null,
      heardVoicedMs: voicedMs(heard),
      greetingVoicedMs: referenceVoicedMs(GREETING, heardDir),
      heardByCaller: await recognisePcm(decodePcmu(heard), 8000, ['hello this is acme', 'see you soon', 'sorry', 'goodbye'], heardDir),
      sippExit: exitCode,
      outcome: record.outcome,
      reason: record.reason,
      campaignId: record.campaignId,
      transcript: record.details?.transcript,
    };
    writeFileSync(join(r.stack.workDir, 'inbound.json'), JSON.stringify(row, null, 2));
    process.stderr.write(`[inbound] ${JSON.stringify(row)}\n`);

    expect(exitCode).toBe(0);
    expect(firstVoiced).toBeDefined();
    expect(row.heardVoicedMs).toBeGreaterThanOrEqual(row.greetingVoicedMs * 0.5);
    expect(row.heardVoicedMs).toBeLessThanOrEqual(row.greetingVoicedMs * 1.5);
    expect(record.outcome).toBe('answered');
    expect(record.reason).toMatch(/^callee hung up/);
    expect(record.campaignId).toBe('inbound');
  }, TEST_TIMEOUT_MS);
});
