import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND } from '../../src/core/time.js';
import { waitFor } from '../helpers/waitFor.js';
import { CALLEE_WORDS, makeAudio, startAgentRig, voicedMs, type AgentRig } from './agentRig.js';
import { liveClients, liveStack } from './liveStack.js';
import { startRtpCapture, type RtpCapture } from './rtpCapture.js';
import { startSippCallee, type SippCallee } from './sipp.js';
import { calleeScenario } from './sippScenarios.js';
import type { ChatView, ScriptedReply } from './speechServer.js';

/**
 * A warm hand-off with agents-js `workflows.WarmTransferTask` on the real stack, a second sipp as the operator:
 * the caller asks for a person, the agent announces it and puts the caller on hold (the task's hold music), dials
 * the operator into `<room>-human-agent` through the operator's trunk, and briefs them when they speak; the
 * operator says yes and the task's connect_to_caller moves them into the caller's room.
 *
 * That move is RoomService.MoveParticipant, which livekit-server v1.13.5 does not implement
 * (pkg/service/roommanager.go: `MoveParticipant … errors.New("not implemented")`; LiveKit Cloud has it). So on this
 * stack the merge fails, the briefing session is scripted to decline (decline_transfer), the task fails, and the
 * agent tells the caller it could not transfer and ends the call. What this test asserts is everything up to the
 * merge (hold audio at the caller, the operator dialed and hearing the briefing) and the failure path after it;
 * the exact error LiveKit gave goes to <workdir>/warm-transfer.json.
 */
const CALLEE_SENTENCE = 'Yes, speaking.';
const OPERATOR_TARGET = 'tel:+12025550110';
const BRIEFING = 'Hello. The caller wants to talk to a person. See you soon.';
const APOLOGY = 'Sorry, I could not connect you. Goodbye.';
const OPERATOR_PORT = 5203;
const OPERATOR_MEDIA_PORT = 16230;
const STACK_IP = process.env.LIVEKIT_STACK_IP ?? '10.77.0.1';
const TEST_TIMEOUT_MS = 300 * SECOND;
/** After the briefing's audio was asked for, the operator listens this long before saying yes. */
const OPERATOR_LISTENS_MS = 6 * SECOND;

let rig: AgentRig | undefined;
let briefed = false;
let transferAsked = 0;
let callee: SippCallee | undefined;
let operator: SippCallee | undefined;
let operatorTrunkId: string | undefined;
const captures: RtpCapture[] = [];

function lastToolOutput(chat: ChatView): string {
  return JSON.stringify(chat.messages.at(-1)?.content ?? '');
}

/** A pino line's `time` (epoch ms); 0 when there is no line. */
function logTime(line: string | undefined): number {
  return Number(/"time":(\d+)/.exec(line ?? '')?.[1] ?? 0);
}

/** From the merge's failure to the apology at the caller: the decline and the caller's model's turn. */
const MAX_FAILURE_TO_APOLOGY_MS = 20 * SECOND;

function reply(chat: ChatView): ScriptedReply {
  // the briefing session in the operator's room (WarmTransferTask's transfer agent)
  if (chat.tools.includes('connect_to_caller')) {
    // connect_to_caller's only result here is the merge's error (agents-js hands the model the tool's failure and
    // keeps the caller on hold): a model that then declines ends the transfer. One that does not leaves the caller
    // on hold until someone hangs up (seen in a first version of this test: 73 s, until livekit-sip dropped the
    // operator's silent line).
    if (chat.afterTool) return { toolCall: { name: 'decline_transfer', args: { reason: 'the call could not be connected' } } };
    if (chat.lastUser.trim() === '') return { text: '' };
    // the operator's first words ("Hello?") get the briefing, the next ones ("Yes, speaking.") are a yes
    if (!briefed) {
      briefed = true;
      return { text: BRIEFING };
    }
    return { toolCall: { name: 'connect_to_caller', args: {} } };
  }
  // the call's own model, talking to the caller
  if (chat.afterTool) {
    return /could not transfer call/.test(lastToolOutput(chat)) ? { text: APOLOGY, toolCall: { name: 'end_call', args: {} } } : { text: '' };
  }
  return chat.lastUser.trim() !== '' && !transferAsked++ ? { toolCall: { name: 'transfer_call', args: { destination: 'operator' } } } : { text: '' };
}

beforeAll(async () => {
  const stack = liveStack();
  operatorTrunkId = (await liveClients(stack).sip.createSipOutboundTrunk('warm-operator', `${stack.farIp}:${OPERATOR_PORT}`, ['+15550009999'])).sipTrunkId;
  rig = await startAgentRig({
    name: 'warm-transfer',
    agentHttpPort: 8187,
    profiles: {
      default: {
        instructions: 'You are Alex, calling about a support ticket.',
        transfer: {
          mode: 'warm',
          announcement: 'Please hold.',
          defaultDestination: 'operator',
          destinations: { operator: { target: OPERATOR_TARGET, description: 'a human operator' } },
        },
      },
    },
    script: { vocabulary: CALLEE_WORDS, reply },
    // WarmTransferTask dials the operator through the agent's SIP_OUTBOUND_TRUNK_ID: the operator's sipp
    agentEnv: { SIP_OUTBOUND_TRUNK_ID: operatorTrunkId, AGENT_TRANSFER_RINGING_TIMEOUT_S: '20' },
  });
}, 240 * SECOND);

afterAll(async () => {
  for (const c of captures.splice(0)) await c.stop();
  await operator?.stop();
  await callee?.stop();
  await rig?.close();
  if (operatorTrunkId) await liveClients().sip.deleteSipTrunk(operatorTrunkId);
});

describe('warm hand-off (WarmTransferTask) on the real stack', () => {
  it('holds the caller, dials and briefs the operator; the merge (MoveParticipant) is refused by OSS livekit-server, so the agent apologises and ends the call', async () => {
    if (!rig) throw new Error('rig not started');
    const r = rig;
    // a retried run (vitest.livekit.config.ts) starts from clean far ends and a fresh script: the failed run's sipp
    // and captures go, and the script's memory (briefed, transfer asked) is reset, else the retry never asks for a
    // transfer nor briefs (the retry of each CI failure failed the same way)
    briefed = false;
    transferAsked = 0;
    for (const c of captures.splice(0)) await c.stop();
    await operator?.stop();
    await callee?.stop();
    const opDir = join(r.stack.workDir, 'warm-transfer', 'operator');
    mkdirSync(opDir, { recursive: true });
    makeAudio(join(opDir, 'silence.wav'), { trailingSilenceS: 1 });
    makeAudio(join(opDir, 'hello.wav'), { text: 'Hello?', trailingSilenceS: 60 });
    makeAudio(join(opDir, 'yes.wav'), { text: CALLEE_SENTENCE, trailingSilenceS: 60 });
    operator = await startSippCallee({
      scenario: calleeScenario('operator', [
        { kind: 'cue' },
        { kind: 'say', file: 'hello.wav' },
        { kind: 'cue' },
        { kind: 'say', file: 'yes.wav' },
        { kind: 'awaitBye', timeoutMs: 120_000 },
      ]),
      ip: r.calleeIp,
      port: OPERATOR_PORT,
      mediaPort: OPERATOR_MEDIA_PORT,
      workDir: opDir,
      mediaDir: opDir,
    });
    callee = await r.startCallee(
      calleeScenario('warm-caller', [{ kind: 'cue' }, { kind: 'say', file: 'callee.wav' }, { kind: 'awaitBye', timeoutMs: 180_000 }]),
      { 'callee.wav': { text: CALLEE_SENTENCE, trailingSilenceS: 120 } },
    );
    const calleeCapture = await startRtpCapture({ port: r.calleeMediaPort, workDir: join(r.stack.workDir, 'warm-transfer') });
    captures.push(calleeCapture);
    const operatorCapture = await startRtpCapture({ port: OPERATOR_MEDIA_PORT, workDir: opDir });
    captures.push(operatorCapture);

    const { callId } = await r.dialer.producer.enqueueCall({ phoneNumber: '+14155550170', campaignId: 'lk-warm' });
    const room = `call-${callId}-1`;
    await r.agentPublishing(room);
    await callee.cue(STACK_IP);
    const op = operator;
    const operatorAnswered = await waitFor(
      () => op.messages().find((m) => m.direction === 'sent' && m.startLine.startsWith('SIP/2.0 200')),
      90 * SECOND,
      'the operator answered',
    );
    await r.agentPublishing(`${room}-human-agent`, 30 * SECOND);
    await op.cue(STACK_IP);
    // agents-js asks for speech sentence by sentence: the briefing's first sentence marks its start
    const briefing = await waitFor(() => r.speech.events.find((e) => e.type === 'tts' && BRIEFING.startsWith(e.text.trim())), 60 * SECOND, 'the briefing');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, briefing.at + OPERATOR_LISTENS_MS - Date.now())));
    await op.cue(STACK_IP);
    const record = await r.dialer.waitForOutcome('lk-warm', callId, 120 * SECOND);
    const c = callee;
    const calleeBye = await waitFor(() => c.messages().find((m) => m.direction === 'received' && m.startLine.startsWith('BYE ')), 30 * SECOND, 'BYE at the caller');
    const operatorBye = await waitFor(() => op.messages().find((m) => m.direction === 'received' && m.startLine.startsWith('BYE ')), 30 * SECOND, 'BYE at the operator');
    await r.roomGone(room);
    const calleePackets = await calleeCapture.stop();
    const operatorPackets = await operatorCapture.stop();
    captures.splice(0);

    const apologyAt = r.speech.events.find((e) => e.type === 'tts' && APOLOGY.startsWith(e.text.trim()))?.at ?? calleeBye.at;
    const holdVoicedMs = voicedMs(calleePackets.filter((p) => p.at > operatorAnswered.at && p.at < apologyAt));
    const briefingHeardMs = voicedMs(operatorPackets.filter((p) => p.at > briefing.at && p.at < operatorBye.at));
    const mergeErrors = r
      .agentLog()
      .split('\n')
      .filter((l) => /not implemented|moveParticipant|MoveParticipant|connect_to_caller|warm transfer failed/i.test(l))
      .map((l) => l.slice(0, 600));
    const row = {
      outcome: record.outcome,
      reason: record.reason,
      operatorInvite: op.invites()[0]?.startLine,
      holdVoicedMs,
      holdWindowMs: apologyAt - operatorAnswered.at,
      briefingHeardMs,
      mergeErrors,
      apologyAfterMergeFailedMs: apologyAt - logTime(mergeErrors.find((l) => /not implemented/.test(l))),
      operatorByeAfterCalleeByeMs: operatorBye.at - calleeBye.at,
      transcript: record.details?.transcript,
      chats: r.speech.events.filter((e) => e.type === 'chat').map((e) => (e.type === 'chat' ? { lastUser: e.lastUser, tools: e.tools.length, reply: e.reply } : undefined)),
    };
    writeFileSync(join(r.stack.workDir, 'warm-transfer.json'), JSON.stringify(row, null, 2));
    process.stderr.write(`[warm-transfer] ${JSON.stringify({ ...row, chats: undefined })}\n`);

    expect(row.operatorInvite).toContain('+12025550110');
    // the caller heard the hold music while the operator was dialed and briefed
    expect(holdVoicedMs).toBeGreaterThan(SECOND);
    // the operator heard the briefing
    expect(briefingHeardMs).toBeGreaterThan(SECOND / 2);
    expect(mergeErrors.some((l) => /not implemented/i.test(l))).toBe(true);
    expect(row.apologyAfterMergeFailedMs).toBeLessThan(MAX_FAILURE_TO_APOLOGY_MS);
    expect(record.outcome).toBe('answered');
    expect(record.reason).toBe('agent ended the call');
    expect(JSON.stringify(record.details?.transcript)).toMatch(/could not transfer call/);
    await r.roomGone(`${room}-human-agent`);
  }, TEST_TIMEOUT_MS);
});
