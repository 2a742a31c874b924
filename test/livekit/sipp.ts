import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SECOND } from '../../src/core/time.js';
import { startProcess, waitUntilReady, type ManagedProcess } from './processes.js';

/** sipp scenarios of the far end (test/livekit/sipp/*.xml). */
export type SippScenario = 'busy' | 'decline' | 'not-found' | 'ring-out' | 'answer-speak';

/** A scenario written by the test (test/livekit/sippScenarios.ts): its name and its XML. */
export interface GeneratedScenario {
  name: string;
  xml: string;
}

const SCENARIO_DIR = fileURLToPath(new URL('./sipp/', import.meta.url));

/** One SIP message sipp logged, as read from its `-trace_msg` file. */
export interface SippMessage {
  direction: 'received' | 'sent';
  /** sipp's timestamp of the log entry, epoch ms. */
  at: number;
  /** The start line, e.g. `INVITE sip:+1555…@10.77.0.2:5071 SIP/2.0` or `SIP/2.0 486 Busy Here`. */
  startLine: string;
  headers: Map<string, string>;
  raw: string;
}

/** A sipp playing the callee on farIp:port; `trunkAddress` is what an outbound trunk points at. */
export interface SippCallee {
  scenario: string;
  port: number;
  trunkAddress: string;
  process: ManagedProcess;
  /** Every message logged so far. */
  messages(): SippMessage[];
  /** Distinct INVITE transactions received (retransmissions share Call-ID and CSeq and count once). */
  invites(): SippMessage[];
  /**
   * Sends a SIP INFO from `fromIp` inside the last dialog sipp set up (the 200 OK to an INVITE it sent or received):
   * a scenario's cue to go on (start talking, hang up). Throws if no INVITE was answered yet.
   */
  cue(fromIp: string): Promise<void>;
  /** Resolves once sipp has exited (a caller scenario ends after its one call), with its exit code. */
  exited(): Promise<number | null>;
  stop(): Promise<void>;
}

let cueSeq = 900;

/**
 * Builds an in-dialog INFO from the 200 OK to the INVITE (its From/To carry both tags): as the party that is not
 * sipp, so From/To are swapped when sipp placed the call.
 */
function infoRequest(ok: SippMessage, target: string, fromIp: string, localPort: number): string {
  const header = (name: string) => {
    const value = ok.headers.get(name);
    if (!value) throw new Error(`sipp's 200 OK has no ${name} header`);
    return value;
  };
  const sippCalled = ok.direction === 'sent';
  cueSeq += 1;
  return [
    `INFO sip:${target} SIP/2.0`,
    `Via: SIP/2.0/UDP ${fromIp}:${localPort};branch=z9hG4bK-cue-${Date.now()}-${cueSeq}`,
    `From: ${header(sippCalled ? 'from' : 'to')}`,
    `To: ${header(sippCalled ? 'to' : 'from')}`,
    `Call-ID: ${header('call-id')}`,
    `CSeq: ${cueSeq} INFO`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** sipp writes this line before every message in its -trace_msg file: dashes and a local date-time (µs). */
const ENTRY_SEPARATOR = /^-{10,} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)\s*$/m;

/** `2026-12-01 00:05:59.077688` (local time, as sipp prints it) → epoch ms. */
function sippTime(text: string): number {
  const [date, time] = text.split(' ');
  const [hms, frac = '0'] = (time ?? '').split('.');
  return new Date(`${date}T${hms}`).getTime() + Math.floor(Number(`0.${frac}`) * SECOND);
}
const DIRECTION = /^(UDP|TCP) message (received|sent)/;

/** Parses sipp's message log (`-trace_msg`): entries separated by a dashed line with a timestamp. */
export function parseSippMessageLog(text: string): SippMessage[] {
  const out: SippMessage[] = [];
  const parts = text.split(ENTRY_SEPARATOR);
  // split with a capture group: [before, ts1, body1, ts2, body2, ...]
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const at = sippTime(parts[i] ?? '');
    const body = (parts[i + 1] ?? '').replace(/^\s+/, '');
    const lines = body.split(/\r?\n/);
    const dir = DIRECTION.exec(lines[0] ?? '');
    if (!dir) continue;
    const msgLines = lines.slice(1);
    const start = msgLines.findIndex((l) => l.trim() !== '');
    if (start < 0) continue;
    const startLine = (msgLines[start] ?? '').trim();
    const headers = new Map<string, string>();
    for (const line of msgLines.slice(start + 1)) {
      if (line.trim() === '') break;
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    out.push({ direction: dir[2] === 'received' ? 'received' : 'sent', at, startLine, headers, raw: msgLines.join('\n') });
  }
  return out;
}

/**
 * Starts sipp as a UAS with one of our scenarios on `ip:port`, logging every message. sipp keeps answering calls
 * until stopped (by PID). Ready once its log file exists (sipp opens it at start).
 */
export async function startSippCallee(options: {
  scenario: SippScenario | GeneratedScenario;
  ip: string;
  port: number;
  workDir: string;
  /** sipp's working folder, where its WAV files are (`workDir` by default). */
  mediaDir?: string;
  /** RTP port for scenarios with media. */
  mediaPort?: number;
  /** Extra `-key name value` pairs for the scenario. */
  keys?: Record<string, string>;
  /** A caller instead: places one call to `remote` (livekit-sip) for `service` (the called number), then exits. */
  call?: { remote: string; service: string };
}): Promise<SippCallee> {
  const { ip, port, workDir } = options;
  const cwd = options.mediaDir ?? workDir;
  mkdirSync(cwd, { recursive: true });
  const scenario = typeof options.scenario === 'string' ? options.scenario : options.scenario.name;
  let scenarioFile = join(SCENARIO_DIR, `${scenario}.xml`);
  if (typeof options.scenario !== 'string') {
    scenarioFile = join(cwd, `${scenario}.xml`);
    writeFileSync(scenarioFile, options.scenario.xml);
  }
  const messageFile = join(workDir, `sipp-${scenario}-${port}.messages.log`);
  const errorFile = join(workDir, `sipp-${scenario}-${port}.errors.log`);
  const args = [
    '-sf', scenarioFile,
    '-i', ip, '-p', String(port), '-bind_local',
    '-mi', ip, '-mp', String(options.mediaPort ?? port + 10_000),
    '-t', 'u1',
    '-nostdin',
    '-aa',
    '-trace_msg', '-message_file', messageFile,
    '-trace_err', '-error_file', errorFile,
    ...Object.entries(options.keys ?? {}).flatMap(([k, v]) => ['-key', k, v]),
    ...(options.call ? ['-s', options.call.service, '-m', '1', options.call.remote] : []),
  ];
  const proc = startProcess(`sipp ${scenario}`, 'sipp', args, { logFile: join(workDir, `sipp-${scenario}-${port}.log`), cwd });
  // sipp creates its message file as soon as it has parsed the scenario and bound its socket
  await waitUntilReady(proc, async () => existsSync(messageFile), 10 * SECOND, 50);
  const messages = () => (existsSync(messageFile) ? parseSippMessageLog(readFileSync(messageFile, 'utf8')) : []);
  return {
    scenario,
    port,
    trunkAddress: `${ip}:${port}`,
    process: proc,
    messages,
    invites: () => {
      const seen = new Set<string>();
      return messages().filter((m) => {
        if (m.direction !== 'received' || !m.startLine.startsWith('INVITE ')) return false;
        const key = `${m.headers.get('call-id') ?? ''} ${m.headers.get('cseq') ?? ''}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
    },
    cue: async (fromIp) => {
      const ok = messages()
        .filter((m) => m.startLine.startsWith('SIP/2.0 200') && /INVITE/.test(m.headers.get('cseq') ?? ''))
        .at(-1);
      if (!ok) throw new Error('sipp has answered no INVITE yet: nothing to cue');
      const socket = createSocket('udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind(0, fromIp, () => resolve());
        });
        const request = infoRequest(ok, `${ip}:${port}`, fromIp, socket.address().port);
        await new Promise<void>((resolve, reject) => socket.send(request, port, ip, (err) => (err ? reject(err) : resolve())));
      } finally {
        socket.close();
      }
    },
    exited: async () => (await proc.exited).code,
    stop: () => proc.stop(),
  };
}
