import type { GeneratedScenario } from './sipp.js';

/**
 * sipp scenarios for the far end of the agent scenarios, built from steps so each one says what the phone does in
 * order (sipp 3.6 XML; message shapes follow sipp's own uas/uac scenarios and RFC 3261/3515).
 *
 * A callee always starts by answering (100, 180, 200 with PCMU + telephone-event 101, ACK) and then streams
 * silence.wav in a loop from its working folder: livekit-sip hangs up after about 15 s without RTP. `cue` waits
 * for an in-dialog INFO that the test sends (`SippCallee.cue`) when the agent is ready or at the moment the scenario
 * needs; `say` plays a WAV once (8 kHz µ-law, padded with silence by the test so RTP keeps flowing after it).
 */
export type CalleeStep =
  | { kind: 'cue' }
  | { kind: 'say'; file: string }
  | { kind: 'dtmf'; digit: DtmfPcapDigit }
  | { kind: 'refer'; answer: 'accept' | { code: number; reason: string } }
  | { kind: 'hangup' }
  | { kind: 'awaitBye'; timeoutMs: number };

/** Digits sipp ships an RFC 2833 pcap for (/usr/share/sip-tester/dtmf_2833_<digit>.pcap). */
export type DtmfPcapDigit = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | 'pound' | 'star';

/** Where Debian's sip-tester keeps its RFC 2833 pcaps (one digit each, payload type 101, about 100 ms). */
export const SIPP_PCAP_DIR = '/usr/share/sip-tester';
/** How long sipp leaves the silence stream paused while a DTMF pcap plays (the pcap lasts about 100 ms). */
const DTMF_PCAP_PAUSE_MS = 600;
const WAIT_MS = 90_000;

const cdata = (text: string) => `<![CDATA[\n${text.trim()}\n\n]]>`;

/** A response to the last request sipp received, in that request's dialog. */
function reply(status: string, extra: string[] = []): string {
  return `  <send>${cdata(
    [`SIP/2.0 ${status}`, '[last_Via:]', '[last_From:]', '[last_To:]', '[last_Call-ID:]', '[last_CSeq:]', ...extra, 'Content-Length: 0'].join(
      '\n',
    ),
  )}</send>`;
}

/** A request sipp (the callee) sends inside the dialog LiveKit's INVITE made. */
function calleeRequest(method: string, cseq: number, extra: string[], body?: string): string {
  const lines = [
    `${method} [$remote_contact] SIP/2.0`,
    'Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]',
    'From: [$local_to];tag=[pid]SIPpTag01[call_number]',
    'To: [$remote_from]',
    '[last_Call-ID:]',
    `CSeq: ${cseq} ${method}`,
    'Max-Forwards: 70',
    'Contact: <sip:[local_ip]:[local_port];transport=[transport]>',
    ...extra,
    body === undefined ? 'Content-Length: 0' : 'Content-Length: [len]',
  ];
  return `  <send retrans="500">${cdata(body === undefined ? lines.join('\n') : `${lines.join('\n')}\n\n${body}`)}</send>`;
}

const exec = (attrs: string) => `  <nop><action><exec ${attrs} /></action></nop>`;

/** sipp refuses a variable that is assigned and never used: the dialog's addresses are kept only when needed. */
const INVITE_KEEPING_DIALOG = `  <recv request="INVITE">
    <action>
      <ereg regexp="[^ ].*" search_in="hdr" header="From:" assign_to="remote_from" />
      <ereg regexp="[^ ].*" search_in="hdr" header="To:" assign_to="local_to" />
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="remote_contact" />
    </action>
  </recv>`;

const answer = (keepDialog: boolean) => `${keepDialog ? INVITE_KEEPING_DIALOG : '  <recv request="INVITE" />'}
  <send>${cdata(`SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0`)}</send>
  <send>${cdata(`SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0`)}</send>
  <pause milliseconds="500" />
  <send retrans="500">${cdata(`SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=callee 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv`)}</send>
  <recv request="ACK" />
${exec('rtp_stream="silence.wav,-1,0"')}`;

function calleeStep(step: CalleeStep, index: number): string {
  const cseq = 101 + index;
  switch (step.kind) {
    case 'cue':
      return `  <recv request="INFO" timeout="${WAIT_MS}" />\n${reply('200 OK')}`;
    case 'say':
      return exec(`rtp_stream="${step.file},1,0"`);
    case 'dtmf':
      // one RTP stream at a time: the silence (or speech) stream pauses while the pcap's events go out
      return [
        exec('rtp_stream="pause"'),
        exec(`play_pcap_audio="${SIPP_PCAP_DIR}/dtmf_2833_${step.digit}.pcap"`),
        `  <pause milliseconds="${DTMF_PCAP_PAUSE_MS}" />`,
        exec('rtp_stream="resume"'),
      ].join('\n');
    case 'refer': {
      if (step.answer !== 'accept') return `  <recv request="REFER" timeout="${WAIT_MS}" />\n${reply(`${step.answer.code} ${step.answer.reason}`)}`;
      const received = `  <recv request="REFER" timeout="${WAIT_MS}">
    <action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="refer_cseq" /></action>
  </recv>`;
      // RFC 3515: 202 Accepted, then the outcome of the transfer as a sipfrag NOTIFY (the new call succeeded)
      return [
        received,
        reply('202 Accepted', ['Contact: <sip:[local_ip]:[local_port];transport=[transport]>']),
        calleeRequest(
          'NOTIFY',
          cseq,
          ['Event: refer;id=[$refer_cseq]', 'Subscription-State: terminated;reason=noresource', 'Content-Type: message/sipfrag;version=2.0'],
          'SIP/2.0 200 OK',
        ),
        `  <recv response="200" timeout="10000" />`,
      ].join('\n');
    }
    case 'hangup':
      return `${calleeRequest('BYE', cseq, [])}\n  <recv response="200" timeout="10000" />`;
    case 'awaitBye':
      return `  <recv request="BYE" timeout="${step.timeoutMs}" />\n${reply('200 OK')}`;
  }
}

/** A callee (UAS) that answers, then runs `steps` in order. */
export function calleeScenario(name: string, steps: CalleeStep[]): GeneratedScenario {
  return { name, xml: `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- generated by test/livekit/sippScenarios.ts: ${name} -->
<scenario name="${name}">
${answer(steps.some((s) => s.kind === 'hangup' || (s.kind === 'refer' && s.answer === 'accept')))}
${steps.map(calleeStep).join('\n')}
</scenario>
` };
}

/**
 * A caller (UAC) for inbound calls: INVITE to `[service]` (sipp's -s, the inbound trunk's number) at livekit-sip,
 * ACK the answer, stream silence, wait for the test's cue, then hang up.
 */
export function callerScenario(name: string, caller: string): GeneratedScenario {
  return { name, xml: `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- generated by test/livekit/sippScenarios.ts: ${name} -->
<scenario name="${name}">
  <send retrans="500">${cdata(`INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "${caller}" <sip:${caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:${caller}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv`)}</send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="183" optional="true" />
  <recv response="200" rrs="true" timeout="${WAIT_MS}" />
  <send>${cdata(`ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "${caller}" <sip:${caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:${caller}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0`)}</send>
${exec('rtp_stream="silence.wav,-1,0"')}
  <recv request="INFO" timeout="${WAIT_MS}" />
${reply('200 OK')}
  <send retrans="500">${cdata(`BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "${caller}" <sip:${caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:${caller}@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0`)}</send>
  <recv response="200" timeout="10000" />
</scenario>
` };
}
