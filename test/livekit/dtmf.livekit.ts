import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND } from '../../src/core/time.js';
import { waitFor } from '../helpers/waitFor.js';
import { dtmfDigits, startAgentRig, type AgentRig } from './agentRig.js';
import { startRtpCapture, type RtpCapture } from './rtpCapture.js';
import type { SippCallee } from './sipp.js';
import { calleeScenario } from './sippScenarios.js';

/**
 * The dialer presses keys on a real line: a number with an extension (`;ext=42`) is dialed with CreateSIPParticipant
 * `dtmf`, which livekit-sip plays as RFC 4733 events once sipp answers; then sipp plays an IVR prompt ("For sales,
 * press three."), and the agent's send_dtmf_events (agents-js beta.sendDtmfEvents, published in the room) reaches
 * sipp as another event. The events are read from the RTP captured on sipp's media port (payload type 101, which
 * livekit-sip offers). Written to <workdir>/dtmf.json.
 */
const IVR_PROMPT = 'For sales, press three.';
const STACK_IP = process.env.LIVEKIT_STACK_IP ?? '10.77.0.1';
const TEST_TIMEOUT_MS = 240 * SECOND;

let rig: AgentRig | undefined;
let callee: SippCallee | undefined;
let capture: RtpCapture | undefined;

beforeAll(async () => {
  rig = await startAgentRig({
    name: 'dtmf',
    agentHttpPort: 8185,
    profiles: { default: { instructions: 'You are calling Acme to reach their sales team.' } },
    script: {
      // single words: pocketsphinx's 16 kHz model returned nothing for the whole prompt at 8 kHz (see voicemail.livekit.ts);
      // the scripted model presses 3 on whatever it recognised of the menu, the press is what is under test
      vocabulary: ['for', 'sales', 'press', 'three', 'one', 'two', 'hello', 'yes', 'speaking'],
      reply: (chat) => {
        if (chat.afterTool) {
          const last = JSON.stringify(chat.messages.at(-1)?.content ?? '');
          return /DTMF/i.test(last) ? { toolCall: { name: 'end_call', args: {} } } : { text: '' };
        }
        return chat.lastUser.trim() !== '' ? { toolCall: { name: 'send_dtmf_events', args: { events: ['3'] } } } : { text: '' };
      },
    },
  });
}, 240 * SECOND);

afterAll(async () => {
  await capture?.stop();
  await callee?.stop();
  await rig?.close();
});

describe('DTMF from the dialer to an IVR', () => {
  it('dials the extension after the answer, then the agent presses 3 when the menu asks', async () => {
    if (!rig) throw new Error('rig not started');
    const r = rig;
    callee = await r.startCallee(calleeScenario('ivr', [{ kind: 'cue' }, { kind: 'say', file: 'prompt.wav' }, { kind: 'awaitBye', timeoutMs: 60_000 }]), {
      'prompt.wav': { text: IVR_PROMPT, trailingSilenceS: 60 },
    });
    capture = await startRtpCapture({ port: r.calleeMediaPort, workDir: join(r.stack.workDir, 'dtmf') });
    const { callId } = await r.dialer.producer.enqueueCall({ phoneNumber: '+14155550150;ext=42', campaignId: 'lk-dtmf' });
    await r.agentPublishing(`call-${callId}-1`);
    await callee.cue(STACK_IP);
    const cuedAt = Date.now();
    const record = await r.dialer.waitForOutcome('lk-dtmf', callId, 120 * SECOND);
    const c = callee;
    await waitFor(() => c.messages().find((m) => m.direction === 'received' && m.startLine.startsWith('BYE ')), 20 * SECOND, 'BYE at sipp');
    const packets = await capture.stop();
    capture = undefined;
    const answeredAt = c.messages().find((m) => m.direction === 'sent' && m.startLine.startsWith('SIP/2.0 200'))?.at ?? 0;
    const beforeCue = dtmfDigits(packets.filter((p) => p.at < cuedAt));
    const afterCue = dtmfDigits(packets.filter((p) => p.at >= cuedAt));
    const firstEvent = packets.find((p) => p.payloadType === 101);
    const row = {
      outcome: record.outcome,
      reason: record.reason,
      extensionDigits: beforeCue,
      agentDigits: afterCue,
      firstEventAfterAnswerMs: firstEvent ? Math.round(firstEvent.at - answeredAt) : null,
      eventPackets: packets.filter((p) => p.payloadType === 101).length,
      transcript: record.details?.transcript,
      recognised: r.speech.events.filter((e) => e.type === 'transcript').map((e) => (e.type === 'transcript' ? e.text : '')),
    };
    writeFileSync(join(r.stack.workDir, 'dtmf.json'), JSON.stringify(row, null, 2));
    process.stderr.write(`[dtmf] ${JSON.stringify(row)}\n`);

    expect(beforeCue).toBe('42');
    expect(afterCue).toBe('3');
    expect(record.outcome).toBe('answered');
    expect(record.reason).toBe('agent ended the call');
  }, TEST_TIMEOUT_MS);
});
