/**
 * The real @livekit/agents-plugin-openai models, built from the agent's settings, against a local OpenAI-compatible
 * server: proves OPENAI_BASE_URL and OPENAI_API_KEY reach the plugin, that a streamed tool call runs the tool
 * (pipeline mode), and that the default realtime model opens its WebSocket there with the call's voice,
 * instructions and tools.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { initializeLogger, loggerOptions, voice } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { loadAgentSettings } from '../../src/agent/agentConfig.js';
import { buildCallAgent, TOOL_NAMES } from '../../src/agent/callAgent.js';
import { CallServerApi } from '../../src/agent/callServerApi.js';
import { CallController } from '../../src/agent/callController.js';
import { createSessionModels } from '../../src/agent/models.js';
import { CallOutcomeTracker } from '../../src/agent/outcomeTracker.js';
import { parseProfiles, resolveCallProfile } from '../../src/agent/profiles.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { readRequestBody } from '../helpers/httpBody.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';
import { ResultsReader, nextNumber, simClients } from './helpers.js';

interface ChatRequest {
  model: string;
  stream?: boolean;
  messages: { role: string; content?: unknown }[];
  tools?: { type: string; function: { name: string } }[];
}

interface SeenRequest {
  path: string;
  authorization: string | undefined;
  body: ChatRequest;
}

const prefix = uniquePrefix('agent-openai');
const logger = pino({ level: 'silent' });
const seen: SeenRequest[] = [];
/** Speech and transcription requests (pipeline mode), bodies as text (JSON, or the multipart form). */
const audioRequests: { path: string; authorization: string | undefined; body: string }[] = [];
/** 100 ms of 24 kHz mono 16-bit silence: what the fake speech endpoint returns. */
const SPEECH_PCM_BYTES = 4800;
const TRANSCRIPT = 'I would like to talk to a person.';
/** Realtime WebSocket connections the fake server accepted: the URL, the key, and every client event. */
const realtimeConnections: { url: string; authorization: string | undefined; events: { type: string; session?: Record<string, unknown> }[] }[] = [];
let realtimeServer: WebSocketServer;
let server: Server;
let baseURL: string;
let sim: LiveKitSim;
let redis: Redis;
let reporter: ResultReporter;
let results: ResultsReader;

function chunk(delta: Record<string, unknown>, finishReason: string | null = null): string {
  const payload = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'fake', choices: [{ index: 0, delta, finish_reason: finishReason }] };
  return `data: ${JSON.stringify(payload)}\n\n`;
}

/** A chat-completions server that streams: a tool call for "bye", text after a tool result. */
function fakeOpenAI(): Promise<Server> {
  const srv = createServer((req, res) => {
    void readRequestBody(req).then((text) => {
      if (req.method === 'POST' && (req.url === '/v1/audio/speech' || req.url === '/v1/audio/transcriptions')) {
        audioRequests.push({ path: req.url, authorization: req.headers.authorization, body: text });
        if (req.url === '/v1/audio/speech') res.writeHead(200, { 'content-type': 'audio/pcm' }).end(Buffer.alloc(SPEECH_PCM_BYTES));
        else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: TRANSCRIPT }));
        return;
      }
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
        return;
      }
      const body = JSON.parse(text) as ChatRequest;
      seen.push({ path: req.url, authorization: req.headers.authorization, body });
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const last = body.messages.at(-1);
      if (last?.role === 'user' && String(last.content).toLowerCase().includes('bye')) {
        res.write(chunk({ role: 'assistant', content: 'Goodbye, Ada!' }));
        res.write(chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'end_call', arguments: '' } }] }));
        res.write(chunk({ tool_calls: [{ index: 0, function: { arguments: '{}' } }] }));
        res.write(chunk({}, 'tool_calls'));
      } else {
        res.write(chunk({ role: 'assistant', content: 'Okay.' }));
        res.write(chunk({}, 'stop'));
      }
      res.end('data: [DONE]\n\n');
    });
  });
  // The Realtime API: a WebSocket on <base>/realtime?model=…; it only records what the client sends.
  realtimeServer = new WebSocketServer({ server: srv, path: '/v1/realtime' });
  realtimeServer.on('connection', (ws, req) => {
    const connection = { url: req.url ?? '', authorization: req.headers.authorization, events: [] as { type: string }[] };
    realtimeConnections.push(connection);
    ws.on('message', (data: Buffer) => connection.events.push(JSON.parse(data.toString()) as { type: string }));
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

beforeAll(async () => {
  if (!loggerOptions()) initializeLogger({ pretty: false, level: 'fatal' });
  server = await fakeOpenAI();
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  sim = await startLiveKitSim();
  redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
  reporter = new ResultReporter(redis, prefix);
  results = new ResultsReader(testRedisUrl(), prefix);
});

afterAll(async () => {
  await reporter.close();
  await results.close();
  await redis.quit();
  await sim.close();
  for (const client of realtimeServer.clients) client.terminate();
  realtimeServer.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

/** An outbound call's controller in `room` (SIP participant `sip-<callId>`), with a one-profile catalog. */
function outboundController(call: { callId: string; room: string; instructions: string; firstName: string }): CallController {
  const profile = resolveCallProfile({
    catalog: parseProfiles({ p: { instructions: call.instructions } }),
    name: 'p',
    defaultName: 'p',
    values: { first_name: call.firstName },
    limits: { maxCallDurationMs: 30_000, silenceTimeoutMs: 30_000 },
  });
  return new CallController({
    profile,
    tracker: new CallOutcomeTracker({ callId: call.callId, campaignId: 'openai', sink: reporter, logger }),
    serverApi: new CallServerApi({ clients: simClients(sim), roomName: call.room, logger }),
    behaviour: { transferConfirmTimeoutMs: 1000, transferRingingTimeoutS: 5, voicemailPauseMs: 0 },
    outbound: true,
    calleeIdentity: `sip-${call.callId}`,
    sendDtmf: async () => 'sent',
    logger,
  });
}

describe('OpenAI plugin through OPENAI_BASE_URL', () => {
  it('streams a tool call from the configured server: end_call runs, the room is deleted, the outcome is answered', async () => {
    const settings = loadAgentSettings({
      OPENAI_API_KEY: 'sk-local-test',
      OPENAI_BASE_URL: baseURL,
      AGENT_MODEL_MODE: 'pipeline',
      AGENT_LLM_MODEL: 'local-model',
    });
    const models = createSessionModels(settings.models);

    const clients = simClients(sim);
    const number = nextNumber('+1404555');
    sim.network.setBehavior(number, { type: 'answer', afterMs: 10, callee: { kind: 'human' } });
    const room = 'call-openai-1-1';
    await clients.sip.createSipParticipant(sim.outboundTrunkId, number, room, { participantIdentity: 'sip-openai-1', waitUntilAnswered: true });

    const controller = outboundController({ callId: 'openai-1', room, instructions: 'You are calling {{first_name}}.', firstName: 'Ada' });
    const session = new voice.AgentSession({ llm: models.llm, vad: null, userAwayTimeout: null, turnHandling: { turnDetection: 'manual' } });
    await session.start({ agent: buildCallAgent(controller) });
    controller.attach(session);

    const result = session.run({ userInput: 'Thanks, bye!' });
    await result.wait();
    result.expect.nextEvent().isMessage({ role: 'assistant' });
    result.expect.nextEvent().isFunctionCall({ name: TOOL_NAMES.endCall });
    result.expect.nextEvent().isFunctionCallOutput({ isError: false });

    const outcome = await controller.done();
    expect(outcome).toMatchObject({ outcome: 'answered', reason: 'agent ended the call' });
    expect(sim.deletedRooms).toContain(room);
    expect((await results.waitFor('openai-1')).transcript).toContainEqual({ role: 'agent', text: 'Goodbye, Ada!' });

    const first = seen.find((r) => r.path === '/v1/chat/completions');
    expect(first?.authorization).toBe('Bearer sk-local-test');
    expect(first?.body.model).toBe('local-model');
    expect(first?.body.stream).toBe(true);
    expect(first?.body.tools?.map((t) => t.function.name)).toEqual(
      expect.arrayContaining([TOOL_NAMES.voicemail, TOOL_NAMES.endCall, TOOL_NAMES.sendDtmf]),
    );
    expect(JSON.stringify(first?.body.messages[0])).toContain('You are calling Ada.');
    await session.close();
  });

  it("the default realtime model opens <OPENAI_BASE_URL>/realtime with the key and model, and sends the call's voice, instructions and tools", async () => {
    const settings = loadAgentSettings({ OPENAI_API_KEY: 'sk-realtime-test', OPENAI_BASE_URL: baseURL });
    expect(settings.models.mode).toBe('realtime');
    const models = createSessionModels(settings.models, 'cedar');

    const controller = outboundController({
      callId: 'openai-realtime-1',
      room: 'call-openai-realtime-1',
      instructions: 'You are calling {{first_name}} about the survey.',
      firstName: 'Ben',
    });
    const session = new voice.AgentSession({ llm: models.llm, vad: null, userAwayTimeout: null, turnHandling: { turnDetection: 'manual' } });
    try {
      await session.start({ agent: buildCallAgent(controller) });
      const updates = () => realtimeConnections[0]?.events.filter((e) => e.type === 'session.update').map((e) => e.session ?? {}) ?? [];
      const toolNames = (update: Record<string, unknown>) => (Array.isArray(update.tools) ? update.tools.map((t: { name?: string }) => t.name) : []);
      await waitFor(() => (updates().some((u) => toolNames(u).length > 0) ? true : undefined), 10_000, 'a session.update with the tools');

      const connection = realtimeConnections[0];
      expect(connection?.url).toBe('/v1/realtime?model=gpt-realtime');
      expect(connection?.authorization).toBe('Bearer sk-realtime-test');
      const sent = updates();
      expect(JSON.stringify(sent)).toContain('"voice":"cedar"');
      expect(sent.some((u) => String(u.instructions).includes('You are calling Ben about the survey.'))).toBe(true);
      expect(sent.flatMap(toolNames)).toEqual(expect.arrayContaining([TOOL_NAMES.voicemail, TOOL_NAMES.endCall, TOOL_NAMES.sendDtmf]));
    } finally {
      await session.close();
    }
  });

  it('pipeline mode sends speech and transcription to OPENAI_BASE_URL too: TTS with the profile voice, STT with the configured model', async () => {
    const settings = loadAgentSettings({
      OPENAI_API_KEY: 'sk-pipeline-test',
      OPENAI_BASE_URL: baseURL,
      AGENT_MODEL_MODE: 'pipeline',
      AGENT_STT_MODEL: 'local-whisper',
      AGENT_TTS_MODEL: 'local-tts',
    });
    const { stt, tts } = createSessionModels(settings.models, 'nova');
    if (!stt || !tts) throw new Error('pipeline mode builds STT and TTS');

    const frames: AudioFrame[] = [];
    for await (const audio of tts.synthesize('Hello from the dialer.')) frames.push(audio.frame);
    expect(frames.reduce((samples, frame) => samples + frame.samplesPerChannel, 0)).toBe(SPEECH_PCM_BYTES / 2);
    const speech = audioRequests.find((r) => r.path === '/v1/audio/speech');
    expect(speech?.authorization).toBe('Bearer sk-pipeline-test');
    expect(JSON.parse(speech?.body ?? '{}')).toMatchObject({ model: 'local-tts', voice: 'nova', input: 'Hello from the dialer.', response_format: 'pcm' });

    const SAMPLE_RATE = 24_000;
    const samples = SAMPLE_RATE / 10;
    const event = await stt.recognize(new AudioFrame(new Int16Array(samples), SAMPLE_RATE, 1, samples));
    expect(event.alternatives?.[0]?.text).toBe(TRANSCRIPT);
    const transcription = audioRequests.find((r) => r.path === '/v1/audio/transcriptions');
    expect(transcription?.authorization).toBe('Bearer sk-pipeline-test');
    expect(transcription?.body).toMatch(/name="model"\r\n\r\nlocal-whisper\r\n/);
    await tts.close();
    await stt.close();
  });
});
