import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParticipantInfo_Kind } from '@livekit/protocol';
import { SECOND } from '../../src/core/time.js';
import { startCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';
import { liveClients, liveStack, type LiveStackEnv } from './liveStack.js';
import { startLiveDialer, type LiveDialer } from './dialerPipeline.js';
import { packetRms, type RtpPacket } from './rtpCapture.js';
import { startSippCallee, type GeneratedScenario, type SippCallee } from './sipp.js';
import { startSpeechServer, type SpeechScript, type SpeechServer } from './speechServer.js';

/**
 * One production agent (`dialer agent start`, pipeline mode, on the offline speech server), the dialer (results
 * worker and an in-process consumer) and an outbound trunk to a fixed far-end address, shared by the scenarios of
 * one test file: each scenario starts its own sipp there and swaps the speech server's script. Starting the agent
 * is the slow part (a job process, tsx), so it happens once per file.
 */
export interface AgentRig {
  stack: LiveStackEnv;
  speech: SpeechServer;
  dialer: LiveDialer;
  trunkId: string;
  /** Where each scenario's sipp callee listens (the trunk's address). */
  calleeIp: string;
  calleePort: number;
  /** sipp's RTP port (capture it to hear the agent). */
  calleeMediaPort: number;
  agentLog(): string;
  /** Starts sipp on the callee address with `scenario`, its WAVs made in a folder of its own. */
  startCallee(scenario: GeneratedScenario, audio: Record<string, AudioSpec>): Promise<SippCallee>;
  /** Waits until the agent is in `room` and publishing its audio (its session started): returns when (epoch ms). */
  agentPublishing(room: string, timeoutMs?: number): Promise<number>;
  /** Resolves when no room's name contains `fragment` (the call was hung up), or throws after `timeoutMs`. */
  roomGone(fragment: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A WAV for sipp: speech by espeak-ng, an optional beep, then silence; 8 kHz µ-law as a phone carries it. */
export interface AudioSpec {
  text?: string;
  /** A 1 kHz answering-machine beep of this many ms after the speech (after a short gap). */
  beepMs?: number;
  /** Silence after it all: keeps RTP flowing, livekit-sip hangs up after about 15 s without any. */
  trailingSilenceS: number;
}

/** How long the spoken part (speech and beep) of a WAV lasts, ms. */
export interface MadeAudio {
  spokenMs: number;
}

const SPEAKING_RATE_WPM = '140';
const BEEP_HZ = '1000';
const GAP_BEFORE_BEEP_S = '0.4';
const AGENT_START_WAIT_MS = 180 * SECOND;
const AGENT_STOP_GRACE_MS = 15 * SECOND;
/**
 * agents-js reports its host's CPU share as the worker's load (cpu.js; here cgroup v1, cpuacct usage / (interval ×
 * NUM_CPUS)), and livekit-server offers a dispatch only to a worker whose load is under `target_load` (0.7;
 * pkg/service/agentservice.go JobRequestAffinity), once: there is no retry. On this 2-core machine shared with other
 * builds the share was 0.65–1.0, and dispatches were dropped ("failed to send job request … no servers available
 * (received 1 responses)", the bytes on the worker's WebSocket said load 0.8): the callee answered into a room no
 * agent ever joined. Counting many CPUs keeps the test's one worker eligible; the suite measures the dialer, not the
 * machine's spare capacity. (It only works because test.sh enters the namespace with `nsenter --net`, which keeps
 * /sys/fs/cgroup; `ip netns exec` remounts /sys, agents-js then falls back to os.cpus(), which ignores NUM_CPUS.)
 */
const AGENT_NUM_CPUS = '1000';
const CALLEE_PORT = 5201;
const CALLEE_MEDIA_PORT = 16200;

function soxDurationMs(file: string): number {
  return Number(execFileSync('soxi', ['-D', file]).toString().trim()) * SECOND;
}

/** Makes `file` (8 kHz µ-law WAV) from `spec`; returns how long its speech and beep last. */
export function makeAudio(file: string, spec: AudioSpec): MadeAudio {
  const dir = `${file}.parts`;
  mkdirSync(dir, { recursive: true });
  const parts: string[] = [];
  if (spec.text) {
    const raw = join(dir, 'speech-raw.wav');
    execFileSync('espeak-ng', ['-v', 'en-us', '-s', SPEAKING_RATE_WPM, '-w', raw, spec.text]);
    const speech = join(dir, 'speech.wav');
    execFileSync('sox', [raw, '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed', speech]);
    parts.push(speech);
  }
  if (spec.beepMs) {
    const beep = join(dir, 'beep.wav');
    execFileSync('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed', beep, 'synth', String(spec.beepMs / SECOND), 'sine', BEEP_HZ, 'vol', '0.5']);
    const gap = join(dir, 'gap.wav');
    execFileSync('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed', gap, 'trim', '0', GAP_BEFORE_BEEP_S]);
    parts.push(gap, beep);
  }
  const spoken = join(dir, 'spoken.wav');
  if (parts.length === 0) execFileSync('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed', spoken, 'trim', '0', '0.02']);
  else execFileSync('sox', [...parts, spoken]);
  const spokenMs = parts.length === 0 ? 0 : soxDurationMs(spoken);
  execFileSync('sox', [spoken, '-r', '8000', '-c', '1', '-e', 'mu-law', file, 'pad', '0', String(spec.trailingSilenceS)]);
  return { spokenMs };
}

/**
 * The recogniser's closed set for a callee saying "Yes, speaking." or "Hello?": single words, so pocketsphinx (a 16 kHz
 * model on 8 kHz telephone audio that crossed Opus) returns some words for any stretch of speech. Whole phrases came
 * back empty now and then on a busy machine, and the scenario then stalled; scripted models act on "the callee said
 * something" and the words are kept as a figure.
 */
export const CALLEE_WORDS = ['yes', 'speaking', 'hello', 'no', 'thank', 'you'];

/** A 20 ms µ-law packet louder than this (RMS of 16-bit samples) carries speech, not comfort noise or silence. */
export const VOICED_PACKET_RMS = 300;
export const RTP_PACKET_MS = 20;
const G711_SAMPLES_PER_PACKET = 160;

/** Voiced time (ms) of PCMU packets. */
export function voicedMs(packets: RtpPacket[]): number {
  return packets.filter((p) => p.payloadType === 0 && packetRms(p) > VOICED_PACKET_RMS).length * RTP_PACKET_MS;
}

/** Voiced time (ms) of `text` spoken by espeak-ng as the speech server does, carried as 8 kHz µ-law (no Opus). */
export function referenceVoicedMs(text: string, dir: string): number {
  mkdirSync(dir, { recursive: true });
  const wav = join(dir, 'reference.wav');
  const raw = join(dir, 'reference.raw');
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', wav, text]);
  execFileSync('sox', [wav, '-r', '8000', '-c', '1', '-e', 'mu-law', '-t', 'raw', raw]);
  const mulaw = execFileSync('cat', [raw]);
  let voiced = 0;
  for (let i = 0; i + G711_SAMPLES_PER_PACKET <= mulaw.length; i += G711_SAMPLES_PER_PACKET) {
    const rms = packetRms({ at: 0, payloadType: 0, marker: false, payload: mulaw.subarray(i, i + G711_SAMPLES_PER_PACKET) });
    if (rms > VOICED_PACKET_RMS) voiced += RTP_PACKET_MS;
  }
  return voiced;
}

/**
 * RFC 4733 telephone events (payload type 101) in capture order, one digit per event: every packet of one event
 * (updates and the repeated end packets) carries the event's RTP timestamp.
 */
export function dtmfDigits(packets: RtpPacket[], payloadType = 101): string {
  const keys = '0123456789*#ABCD';
  const seen = new Set<string>();
  const digits: string[] = [];
  for (const p of packets) {
    if (p.payloadType !== payloadType || p.payload.length < 4) continue;
    const id = `${p.ssrc}/${p.timestamp}`;
    if (seen.has(id)) continue;
    seen.add(id);
    digits.push(keys[p.payload[0] ?? 0] ?? '?');
  }
  return digits.join('');
}

/** Waits until the worker runs no job (agents-js' health server, `GET /worker` → `active_jobs`): one call at a time. */
async function agentIdle(httpPort: number): Promise<void> {
  await waitFor(
    async () => {
      const res = await fetch(`http://127.0.0.1:${httpPort}/worker`, { signal: AbortSignal.timeout(SECOND) }).catch(() => undefined);
      if (!res?.ok) return undefined;
      const info = (await res.json()) as { active_jobs?: number };
      return info.active_jobs === 0 ? true : undefined;
    },
    60 * SECOND,
    'agent worker idle',
  );
}

/**
 * Starts the rig: a trunk to `calleeIp:CALLEE_PORT`, the dialer on the stack's Redis, the speech server and the
 * agent (AGENT_PROFILES_FILE = `profiles` written to the work folder, also set in this process for the consumer and
 * the producer, which read the same catalog).
 */
export async function startAgentRig(options: {
  name: string;
  profiles: Record<string, unknown>;
  script: SpeechScript;
  /** More agent settings (e.g. SIP_OUTBOUND_TRUNK_ID of a warm-transfer operator). */
  agentEnv?: Record<string, string>;
  dialerEnv?: Record<string, string>;
  agentHttpPort: number;
}): Promise<AgentRig> {
  const stack = liveStack();
  const dir = join(stack.workDir, options.name);
  mkdirSync(dir, { recursive: true });
  const profilesFile = join(dir, 'profiles.json');
  writeFileSync(profilesFile, JSON.stringify(options.profiles, null, 2));
  const previousProfiles = process.env.AGENT_PROFILES_FILE;
  process.env.AGENT_PROFILES_FILE = profilesFile;
  const cleanups: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((err: unknown) => process.stderr.write(`[${options.name}] cleanup failed: ${String(err)}\n`));
    }
    if (previousProfiles === undefined) delete process.env.AGENT_PROFILES_FILE;
    else process.env.AGENT_PROFILES_FILE = previousProfiles;
  };
  try {
    const clients = liveClients(stack);
    const trunk = await clients.sip.createSipOutboundTrunk(`${options.name}-callee`, `${stack.farIp}:${CALLEE_PORT}`, ['+15550009999']);
    cleanups.push(() => clients.sip.deleteSipTrunk(trunk.sipTrunkId).then(() => undefined));
    const speech = await startSpeechServer({ host: process.env.LIVEKIT_STACK_IP ?? '10.77.0.1', workDir: dir, script: options.script });
    cleanups.push(() => speech.close());
    const dialer = await startLiveDialer(`lk-${options.name}`, stack, trunk.sipTrunkId, {
      env: { DIAL_MAX_ATTEMPTS: '1', DIAL_RINGING_TIMEOUT_S: '20', AGENT_PROFILES_FILE: profilesFile, ...options.dialerEnv },
    });
    cleanups.push(() => dialer.close());
    const agent = startCli(['agent', 'start'], {
      ...dialer.env,
      LOG_LEVEL: 'info',
      OPENAI_API_KEY: 'sk-offline',
      OPENAI_BASE_URL: speech.baseURL,
      AGENT_MODEL_MODE: 'pipeline',
      AGENT_SILENCE_TIMEOUT_S: '30',
      AGENT_HTTP_PORT: String(options.agentHttpPort),
      AGENT_PROFILES_FILE: profilesFile,
      AGENT_OUTCOME_SPOOL_DIR: join(dir, 'spool'),
      NUM_CPUS: AGENT_NUM_CPUS,
      ...options.agentEnv,
    });
    const agentLog = () => `${agent.output().stdout}\n${agent.output().stderr}`;
    cleanups.push(async () => {
      writeFileSync(join(dir, 'agent.log'), agentLog());
      if (agent.child.exitCode === null && agent.child.signalCode === null) {
        agent.child.kill('SIGTERM');
        const timer = setTimeout(() => agent.child.kill('SIGKILL'), AGENT_STOP_GRACE_MS);
        await agent.done.catch(() => undefined);
        clearTimeout(timer);
      }
    });
    await waitFor(() => (/registered worker/i.test(agentLog()) ? true : undefined), AGENT_START_WAIT_MS, 'agent worker registered');

    let callees = 0;
    return {
      stack,
      speech,
      dialer,
      trunkId: trunk.sipTrunkId,
      calleeIp: stack.farIp,
      calleePort: CALLEE_PORT,
      calleeMediaPort: CALLEE_MEDIA_PORT,
      agentLog,
      startCallee: async (scenario, audio) => {
        await agentIdle(options.agentHttpPort);
        callees += 1;
        const mediaDir = join(dir, `${String(callees).padStart(2, '0')}-${scenario.name}`);
        mkdirSync(mediaDir, { recursive: true });
        makeAudio(join(mediaDir, 'silence.wav'), { trailingSilenceS: 1 });
        for (const [file, spec] of Object.entries(audio)) makeAudio(join(mediaDir, file), spec);
        const callee = await startSippCallee({
          scenario,
          ip: stack.farIp,
          port: CALLEE_PORT,
          mediaPort: CALLEE_MEDIA_PORT,
          workDir: mediaDir,
          mediaDir,
        });
        return callee;
      },
      agentPublishing: (room, timeoutMs = AGENT_START_WAIT_MS) =>
        waitFor(
          async () => {
            const participants = await clients.rooms.listParticipants(room).catch(() => []);
            return participants.some((p) => p.kind === ParticipantInfo_Kind.AGENT && p.tracks.length > 0) ? Date.now() : undefined;
          },
          timeoutMs,
          `agent publishing in ${room}`,
        ),
      roomGone: async (fragment, timeoutMs = 20 * SECOND) => {
        await waitFor(
          async () => ((await clients.rooms.listRooms()).some((r) => r.name.includes(fragment)) ? undefined : true),
          timeoutMs,
          `room ${fragment} deleted`,
        );
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
