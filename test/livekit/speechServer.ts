import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';
import { SECOND } from '../../src/core/time.js';
import { readRequestBody } from '../helpers/httpBody.js';

const run = promisify(execFile);

/**
 * An offline OpenAI-compatible server for the agent's pipeline mode (AGENT_MODEL_MODE=pipeline), so the production
 * agent runs unchanged with OPENAI_BASE_URL pointing here:
 * - `WS /v1/realtime?intent=transcription` (the plugin's default streaming STT): audio in, an energy VAD cuts
 *   utterances, pocketsphinx recognises each against the scenario's phrases (a JSGF grammar), and the server sends
 *   `input_audio_buffer.speech_started/stopped` and `conversation.item.input_audio_transcription.completed`;
 * - `POST /v1/audio/transcriptions`: the same recognition on an uploaded file;
 * - `POST /v1/audio/speech`: espeak-ng, as 24 kHz 16-bit mono PCM (the plugin asks for `response_format: pcm`);
 * - `POST /v1/chat/completions`: scripted per scenario, streamed as SSE, tool calls included.
 * Event shapes read from @livekit/agents-plugin-openai 1.9 dist/stt.js, tts.js and llm.js.
 */
export interface ScriptedReply {
  text?: string;
  toolCall?: { name: string; args: Record<string, unknown> };
}

export interface ChatView {
  /** Text of the last user message ('' if none). */
  lastUser: string;
  /** Text of the system (or developer) messages, joined: tells the call's own chat from voice.AMD's classifier. */
  system: string;
  /** Names of the tools offered with the request (`save_prediction` for voice.AMD, `connect_to_caller` for a briefing). */
  tools: string[];
  /** The last message is a tool result. */
  afterTool: boolean;
  messages: { role: string; content?: unknown }[];
}

export interface SpeechScript {
  /** Phrases the callee may say: pocketsphinx only picks among them (free recognition of TTS audio is poor). */
  vocabulary: string[];
  reply(chat: ChatView): ScriptedReply;
}

/** Something the server saw, stamped with epoch ms, for assertions and latency figures. */
export type SpeechEvent =
  | { type: 'transcript'; at: number; speechEndAt: number; text: string }
  | { type: 'tts'; at: number; text: string }
  | { type: 'chat'; at: number; lastUser: string; tools: string[]; reply: ScriptedReply };

export interface SpeechServer {
  /** OPENAI_BASE_URL for the agent. */
  baseURL: string;
  events: SpeechEvent[];
  /** Replaces the script (one server serves several scenarios in turn; a running call sees the new one at once). */
  setScript(script: SpeechScript): void;
  close(): Promise<void>;
}

const PCM_RATE = 24_000;
const FRAME_SAMPLES = PCM_RATE / 50; // 20 ms
/** RMS (of 32768) above which a 20 ms frame counts as voiced. */
const VOICED_RMS = 400;
const FRAMES_TO_START = 3;
/** 700 ms of quiet ends an utterance. */
const FRAMES_TO_STOP = 35;
const PREROLL_FRAMES = 10;
const TOOL_TIMEOUT_MS = 20 * SECOND;

function grammar(vocabulary: string[]): string {
  const words = vocabulary.map((p) => p.toLowerCase().replace(/[^a-z' ]/g, ' ').replace(/\s+/g, ' ').trim()).filter(Boolean);
  return `#JSGF V1.0;\ngrammar callee;\npublic <utt> = <phrase>+;\n<phrase> = ${[...new Set(words)].join(' | ')};\n`;
}

let recognitions = 0;

/**
 * Recognises 16-bit mono PCM at `rate` Hz with pocketsphinx, limited to `vocabulary` (a JSGF grammar of those
 * phrases); returns the words, lower case ('' for nothing recognised). Files go to `dir`.
 */
export async function recognisePcm(pcm: Buffer, rate: number, vocabulary: string[], dir: string): Promise<string> {
  const n = (recognitions += 1);
  const raw = join(dir, `utt-${n}.raw`);
  const wav = join(dir, `utt-${n}.wav`);
  const grammarFile = join(dir, `utt-${n}.jsgf`);
  writeFileSync(raw, pcm);
  writeFileSync(grammarFile, grammar(vocabulary));
  await run('sox', ['-t', 'raw', '-r', String(rate), '-e', 'signed', '-b', '16', '-c', '1', raw, '-r', '16000', wav], { timeout: TOOL_TIMEOUT_MS });
  const { stdout } = await run('pocketsphinx_continuous', ['-infile', wav, '-jsgf', grammarFile, '-logfn', '/dev/null'], {
    timeout: TOOL_TIMEOUT_MS,
  });
  return stdout.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

/** espeak-ng → 24 kHz 16-bit mono PCM. */
async function synthesise(text: string, dir: string, n: number): Promise<Buffer> {
  const wav = join(dir, `tts-${n}.wav`);
  await run('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', wav, text], { timeout: TOOL_TIMEOUT_MS });
  const { stdout } = await run('sox', [wav, '-t', 'raw', '-r', String(PCM_RATE), '-e', 'signed', '-b', '16', '-c', '1', '-'], {
    encoding: 'buffer',
    timeout: TOOL_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

function sse(res: ServerResponse, reply: ScriptedReply): void {
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-local', object: 'chat.completion.chunk', created: 1, model: 'local', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(chunk({ role: 'assistant', content: reply.text ?? '' }));
  if (reply.toolCall) {
    res.write(chunk({ tool_calls: [{ index: 0, id: 'call_local_1', type: 'function', function: { name: reply.toolCall.name, arguments: '' } }] }));
    res.write(chunk({ tool_calls: [{ index: 0, function: { arguments: JSON.stringify(reply.toolCall.args) } }] }));
    res.write(chunk({}, 'tool_calls'));
  } else {
    res.write(chunk({}, 'stop'));
  }
  res.end('data: [DONE]\n\n');
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p: unknown) => (p && typeof p === 'object' && 'text' in p ? String((p as { text: unknown }).text) : '')).join(' ');
  }
  return '';
}

/** One realtime transcription connection: VAD over the appended audio, pocketsphinx per utterance. */
function transcriptionSession(ws: WebSocket, recogniseUtterance: (pcm: Buffer) => Promise<string>, events: SpeechEvent[]): void {
  let pending = Buffer.alloc(0);
  const preroll: Buffer[] = [];
  let utterance: Buffer[] = [];
  let voicedRun = 0;
  let quietRun = 0;
  let speaking = false;
  let item = 0;
  let audioMs = 0;
  const send = (event: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(event));
  };
  const onFrame = (frame: Buffer) => {
    audioMs += 20;
    let sum = 0;
    for (let i = 0; i + 1 < frame.length; i += 2) sum += frame.readInt16LE(i) ** 2;
    const rms = Math.sqrt(sum / (frame.length / 2));
    const voiced = rms > VOICED_RMS;
    if (!speaking) {
      preroll.push(frame);
      if (preroll.length > PREROLL_FRAMES) preroll.shift();
      voicedRun = voiced ? voicedRun + 1 : 0;
      if (voicedRun >= FRAMES_TO_START) {
        speaking = true;
        item += 1;
        utterance = [...preroll];
        quietRun = 0;
        send({ type: 'input_audio_buffer.speech_started', item_id: `item_${item}`, audio_start_ms: audioMs });
      }
      return;
    }
    utterance.push(frame);
    quietRun = voiced ? 0 : quietRun + 1;
    if (quietRun >= FRAMES_TO_STOP) {
      speaking = false;
      voicedRun = 0;
      const itemId = `item_${item}`;
      const speechEndAt = Date.now() - FRAMES_TO_STOP * 20;
      send({ type: 'input_audio_buffer.speech_stopped', item_id: itemId, audio_end_ms: audioMs });
      const pcm = Buffer.concat(utterance);
      utterance = [];
      void recogniseUtterance(pcm).then(
        (text) => {
          events.push({ type: 'transcript', at: Date.now(), speechEndAt, text });
          send({ type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, transcript: text });
        },
        (err: unknown) => send({ type: 'error', error: { message: `local recognition failed: ${String(err)}` } }),
      );
    }
  };
  ws.on('message', (data: Buffer) => {
    const event = JSON.parse(data.toString()) as { type: string; audio?: string };
    if (event.type === 'session.update' || event.type === 'transcription_session.update') {
      send({ type: 'session.updated' });
      return;
    }
    if (event.type !== 'input_audio_buffer.append' || !event.audio) return;
    pending = Buffer.concat([pending, Buffer.from(event.audio, 'base64')]);
    const frameBytes = FRAME_SAMPLES * 2;
    while (pending.length >= frameBytes) {
      onFrame(pending.subarray(0, frameBytes));
      pending = pending.subarray(frameBytes);
    }
  });
}

/** Starts the server on `host` (inside the namespace) on a free port. */
export async function startSpeechServer(options: { host: string; workDir: string; script: SpeechScript }): Promise<SpeechServer> {
  const dir = mkdtempSync(join(options.workDir, 'speech-'));
  let script = options.script;
  const recognise = (pcm: Buffer) => recognisePcm(pcm, PCM_RATE, script.vocabulary, dir);
  const events: SpeechEvent[] = [];
  let n = 0;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readRequestBody(req);
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'POST' && path === '/v1/audio/speech') {
      const { input } = JSON.parse(body) as { input: string };
      events.push({ type: 'tts', at: Date.now(), text: input });
      res.writeHead(200, { 'content-type': 'audio/pcm' }).end(await synthesise(input, dir, (n += 1)));
      return;
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') {
      const parsed = JSON.parse(body) as { messages: { role: string; content?: unknown }[]; tools?: { function?: { name?: string } }[] };
      const last = parsed.messages.at(-1);
      const lastUser = textOf([...parsed.messages].reverse().find((m) => m.role === 'user')?.content);
      const system = parsed.messages
        .filter((m) => m.role === 'system' || m.role === 'developer')
        .map((m) => textOf(m.content))
        .join('\n');
      const tools = (parsed.tools ?? []).map((t) => t.function?.name ?? '').filter(Boolean);
      const view: ChatView = { lastUser, system, tools, afterTool: last?.role === 'tool', messages: parsed.messages };
      const reply = script.reply(view);
      events.push({ type: 'chat', at: Date.now(), lastUser, tools, reply });
      sse(res, reply);
      return;
    }
    if (req.method === 'POST' && path === '/v1/audio/transcriptions') {
      // multipart form: the file part is a WAV; recognise its PCM after the 44-byte header
      const wavStart = body.indexOf('RIFF');
      const pcm = Buffer.from(body.slice(wavStart + 44), 'latin1');
      const text = await recognise(pcm);
      events.push({ type: 'transcript', at: Date.now(), speechEndAt: Date.now(), text });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no route ${req.method} ${path}` } }));
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: String(err) } }));
    });
  });
  const wss = new WebSocketServer({ server, path: '/v1/realtime' });
  wss.on('connection', (ws) => transcriptionSession(ws, recognise, events));
  await new Promise<void>((resolve) => server.listen(0, options.host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://${options.host}:${port}/v1`,
    events,
    setScript: (next) => {
      script = next;
    },
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
