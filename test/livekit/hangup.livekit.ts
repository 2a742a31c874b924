import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND } from '../../src/core/time.js';
import { waitFor } from '../helpers/waitFor.js';
import { CALLEE_WORDS, referenceVoicedMs, startAgentRig, voicedMs, type AgentRig } from './agentRig.js';
import { startRtpCapture, type RtpCapture } from './rtpCapture.js';
import type { SippCallee } from './sipp.js';
import { calleeScenario } from './sippScenarios.js';

/**
 * The callee hangs up while the agent is talking: sipp says "Yes, speaking.", the agent starts a long answer, and
 * sipp sends BYE a moment after the agent's speech began. The call ends `answered` with the callee's hang-up as the
 * reason, the room is deleted, and the far end heard only part of the answer. Written to <workdir>/hangup.json.
 */
const CALLEE_SENTENCE = 'Yes, speaking.';
const LONG_REPLY =
  'Thank you. I am calling about your appointment next Tuesday at ten in the morning with doctor Smith, at the clinic on Main Street, and I would like to check that the time still suits you.';
/** How long after the agent asked for its speech the callee hangs up: the speech is under way by then. */
const HANGUP_AFTER_TTS_MS = 2500;
const STACK_IP = process.env.LIVEKIT_STACK_IP ?? '10.77.0.1';
let answered = 0;
const TEST_TIMEOUT_MS = 300 * SECOND;

let rig: AgentRig | undefined;
let callee: SippCallee | undefined;
let capture: RtpCapture | undefined;

beforeAll(async () => {
  rig = await startAgentRig({
    name: 'hangup',
    agentHttpPort: 8183,
    profiles: { default: { instructions: 'You are Alex, calling {{first_name}} about an appointment.' } },
    script: {
      vocabulary: CALLEE_WORDS,
      // the long answer once, to whatever the callee was heard to say
      reply: (chat) => (chat.afterTool || chat.lastUser.trim() === '' || answered++ ? { text: '' } : { text: LONG_REPLY }),
    },
  });
}, 240 * SECOND);

afterAll(async () => {
  await capture?.stop();
  await callee?.stop();
  await rig?.close();
});

describe('the callee hangs up mid-sentence', () => {
  it('ends answered with the hang-up as the reason, the room deleted, the answer cut off at the far end', async () => {
    if (!rig) throw new Error('rig not started');
    const r = rig;
    callee = await r.startCallee(
      calleeScenario('talk-hangup', [{ kind: 'cue' }, { kind: 'say', file: 'callee.wav' }, { kind: 'cue' }, { kind: 'hangup' }]),
      { 'callee.wav': { text: CALLEE_SENTENCE, trailingSilenceS: 60 } },
    );
    capture = await startRtpCapture({ port: r.calleeMediaPort, workDir: join(r.stack.workDir, 'hangup') });
    const { callId } = await r.dialer.producer.enqueueCall({ phoneNumber: '+14155550131', campaignId: 'lk-hangup' });
    const room = `call-${callId}-1`;
    await r.agentPublishing(room);
    await callee.cue(STACK_IP);
    // the agent has asked for its long answer's audio: hang up while it plays
    // agents-js may ask for speech sentence by sentence: the answer's first part marks its start
    const tts = await waitFor(() => r.speech.events.find((e) => e.type === 'tts' && LONG_REPLY.startsWith(e.text.trim())), 90 * SECOND, 'the long answer');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, tts.at + HANGUP_AFTER_TTS_MS - Date.now())));
    await callee.cue(STACK_IP);
    const byeSentAt = await waitFor(
      () => callee?.messages().find((m) => m.direction === 'sent' && m.startLine.startsWith('BYE '))?.at,
      20 * SECOND,
      'BYE from sipp',
    );
    const record = await r.dialer.waitForOutcome('lk-hangup', callId, 60 * SECOND);
    await r.roomGone(callId);
    const roomGoneAfterByeMs = Date.now() - byeSentAt;
    const packets = await capture.stop();
    capture = undefined;
    const heardBeforeBye = voicedMs(packets.filter((p) => p.at > tts.at && p.at < byeSentAt));
    const fullReplyVoicedMs = referenceVoicedMs(LONG_REPLY, join(r.stack.workDir, 'hangup', 'reference'));
    const row = {
      outcome: record.outcome,
      reason: record.reason,
      heardBeforeByeMs: heardBeforeBye,
      fullReplyVoicedMs,
      outcomeAfterByeMs: (record.endedAt ?? Date.now()) - byeSentAt,
      roomGoneAfterByeMs,
      transcript: record.details?.transcript,
    };
    writeFileSync(join(r.stack.workDir, 'hangup.json'), JSON.stringify(row, null, 2));
    process.stderr.write(`[hangup] ${JSON.stringify(row)}\n`);

    expect(record.outcome).toBe('answered');
    expect(record.reason).toMatch(/^callee hung up/);
    // mid-sentence: some of the answer reached sipp before its BYE, not all of it
    expect(heardBeforeBye).toBeGreaterThan(0);
    expect(heardBeforeBye).toBeLessThan(fullReplyVoicedMs * 0.8);
    expect(callee.invites()).toHaveLength(1);
  }, TEST_TIMEOUT_MS);
});
