import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND } from '../../src/core/time.js';
import { waitFor } from '../helpers/waitFor.js';
import { makeAudio, referenceVoicedMs, startAgentRig, voicedMs, VOICED_PACKET_RMS, type AgentRig } from './agentRig.js';
import { decodePcmu, packetRms, startRtpCapture, type RtpCapture } from './rtpCapture.js';
import type { SippCallee } from './sipp.js';
import { calleeScenario } from './sippScenarios.js';
import { recognisePcm } from './speechServer.js';

/**
 * An answering machine picks up: sipp plays a recorded greeting (espeak-ng) and a beep. The production agent runs
 * agents-js voice.AMD (profile `amd: true`), whose classifier LLM is the offline server (scripted: the greeting's
 * recognised words → `machine-vm`), leaves the profile's message after the beep, and hangs up: sipp hears the
 * message and gets a BYE, the outcome is `voicemail`. Figures go to <workdir>/voicemail.json.
 */
/**
 * One breath, no commas: voice.AMD calls a first stretch of speech under 2.5 s with no transcript yet a human
 * (`short_greeting`, agents-js amd.js HUMAN_SPEECH_THRESHOLD_MS), and espeak-ng's pause after "Hi, you have reached
 * Ada." (over the recogniser's 700 ms end of speech) made exactly that happen in a first version of this test.
 */
const GREETING = 'You have reached the voicemail of Ada please leave a message after the tone';
const BEEP_MS = 500;
const VOICEMAIL_MESSAGE = 'Please call us back. Goodbye.';
/**
 * The recogniser's closed set for the callee: single words, so pocketsphinx (a 16 kHz model on 8 kHz telephone
 * audio) returns some words for any stretch of speech. Whole greeting phrases came back empty; this word loop turns
 * the greeting into a dozen or more words (mostly wrong ones) and a "Hello?" into "hello".
 */
const GREETING_VOCABULARY = ['you', 'have', 'reached', 'the', 'voicemail', 'of', 'ada', 'please', 'leave', 'a', 'message', 'after', 'tone', 'hello', 'yes', 'speaking'];
/**
 * The scripted classifier's rule: a long transcript is a machine. (What the words say cannot be relied on, see
 * above; voice.AMD itself times the speech, the silence after it and the end of turn on the real audio.)
 */
const MACHINE_MIN_WORDS = 6;
const MESSAGE_VOCABULARY = ['please call us back', 'goodbye', 'see you soon', 'sorry', 'hello'];
const TEST_TIMEOUT_MS = 300 * SECOND;
const STACK_IP = process.env.LIVEKIT_STACK_IP ?? '10.77.0.1';

let rig: AgentRig | undefined;
let callee: SippCallee | undefined;
let capture: RtpCapture | undefined;

beforeAll(async () => {
  rig = await startAgentRig({
    name: 'voicemail',
    agentHttpPort: 8182,
    profiles: {
      default: {
        instructions: 'You are Alex, calling {{first_name}} about an appointment.',
        voicemailMessage: VOICEMAIL_MESSAGE,
        amd: true,
      },
    },
    script: {
      vocabulary: GREETING_VOCABULARY,
      reply: (chat) => {
        // voice.AMD's classifier: its own prompt, a save_prediction tool (agents-js dist/voice/amd.js detect)
        if (chat.tools.includes('save_prediction')) {
          const machine = chat.lastUser.split(/\s+/).filter(Boolean).length >= MACHINE_MIN_WORDS;
          return { toolCall: { name: 'save_prediction', args: { label: machine ? 'machine-vm' : 'human' } } };
        }
        // the call's own model stays quiet: the greeting is not someone to answer
        return { text: '' };
      },
    },
  });
}, 240 * SECOND);

afterAll(async () => {
  await capture?.stop();
  await callee?.stop();
  await rig?.close();
});

describe('voicemail: voice.AMD on a recorded greeting', () => {
  it('detects the machine, leaves the message after the beep, hangs up; outcome voicemail', async () => {
    if (!rig) throw new Error('rig not started');
    const r = rig;
    callee = await r.startCallee(
      calleeScenario('voicemail-greeting', [{ kind: 'cue' }, { kind: 'say', file: 'greeting.wav' }, { kind: 'awaitBye', timeoutMs: 90_000 }]),
      { 'greeting.wav': { text: GREETING, beepMs: BEEP_MS, trailingSilenceS: 60 } },
    );
    const greetingMs = makeAudio(join(r.stack.workDir, 'voicemail', 'greeting-measure.wav'), {
      text: GREETING,
      beepMs: BEEP_MS,
      trailingSilenceS: 0,
    }).spokenMs;
    capture = await startRtpCapture({ port: r.calleeMediaPort, workDir: join(r.stack.workDir, 'voicemail') });
    const started = Date.now();
    const { callId } = await r.dialer.producer.enqueueCall({ phoneNumber: '+14155550130', campaignId: 'lk-voicemail' });
    const room = `call-${callId}-1`;
    const agentReady = await r.agentPublishing(room);
    await callee.cue(STACK_IP);
    const cuedAt = Date.now();
    const record = await r.dialer.waitForOutcome('lk-voicemail', callId, 120 * SECOND);
    const bye = await waitFor(
      () => callee?.messages().find((m) => m.direction === 'received' && m.startLine.startsWith('BYE ')),
      20 * SECOND,
      'BYE at sipp',
    );
    await r.roomGone(callId);
    const packets = await capture.stop();
    capture = undefined;

    const beepEndAt = cuedAt + greetingMs;
    const afterBeep = packets.filter((p) => p.at > beepEndAt && p.at < bye.at);
    const firstMessagePacket = afterBeep.find((p) => p.payloadType === 0 && packetRms(p) > VOICED_PACKET_RMS);
    const voicedDuringGreeting = voicedMs(packets.filter((p) => p.at > cuedAt && p.at <= beepEndAt));
    const heardDir = join(r.stack.workDir, 'voicemail', 'far-end');
    const heardVoicedMs = voicedMs(afterBeep);
    const messageVoicedMs = referenceVoicedMs(VOICEMAIL_MESSAGE, heardDir);
    const heardBySipp = await recognisePcm(decodePcmu(afterBeep), 8000, MESSAGE_VOCABULARY, heardDir);
    const amdLog = r
      .agentLog()
      .split('\n')
      .filter((l) => /answering machine detection|amd prediction/.test(l))
      .map((l) => l.slice(0, 400));
    const classifierCalls = r.speech.events.filter((e) => e.type === 'chat' && e.tools.includes('save_prediction'));
    const row = {
      agentPublishingAfterStartMs: agentReady - started,
      greetingMs,
      messageStartAfterBeepMs: firstMessagePacket ? Math.round(firstMessagePacket.at - beepEndAt) : null,
      voicedDuringGreetingMs: voicedDuringGreeting,
      heardVoicedMs,
      messageVoicedMs,
      heardBySipp,
      recognised: r.speech.events.filter((e) => e.type === 'transcript').map((e) => (e.type === 'transcript' ? e.text : '')),
      classifierCalls: classifierCalls.map((e) => (e.type === 'chat' ? { lastUser: e.lastUser, reply: e.reply } : undefined)),
      amdLog,
      outcome: record.outcome,
      reason: record.reason,
      transcript: record.details?.transcript,
      byeAfterCueMs: bye.at - cuedAt,
      outcomeAfterCueMs: (record.endedAt ?? Date.now()) - cuedAt,
    };
    writeFileSync(join(r.stack.workDir, 'voicemail.json'), JSON.stringify(row, null, 2));
    process.stderr.write(`[voicemail] ${JSON.stringify(row)}\n`);

    expect(record.outcome).toBe('voicemail');
    expect(record.reason).toBe('answering machine (detected by AMD); message left');
    expect(classifierCalls.length).toBeGreaterThan(0);
    // the agent waited for the beep: nothing voiced reached sipp while the greeting played
    expect(voicedDuringGreeting).toBeLessThanOrEqual(200);
    expect(firstMessagePacket).toBeDefined();
    // the whole message, not a blip: within half and one and a half times its own voiced length
    expect(heardVoicedMs).toBeGreaterThanOrEqual(messageVoicedMs * 0.5);
    expect(heardVoicedMs).toBeLessThanOrEqual(messageVoicedMs * 1.5);
    expect(callee.invites()).toHaveLength(1);
  }, TEST_TIMEOUT_MS);
});
