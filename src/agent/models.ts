import type { llm, stt, tts } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { DEFAULT_REALTIME_VOICE, DEFAULT_TTS_VOICE, requireOpenAIKey, type ModelSettings } from './agentConfig.js';

/** What an AgentSession is built from: a realtime model, or STT → LLM → TTS. */
export interface SessionModels {
  llm: llm.LLM | llm.RealtimeModel;
  stt?: stt.STT;
  tts?: tts.TTS;
  /** A text LLM for voice.AMD's classification (a realtime model cannot classify text on its own). */
  classifierLlm: llm.LLM;
}

/**
 * Builds the OpenAI plugin models from the settings. `OPENAI_BASE_URL` goes to every model, so any
 * OpenAI-compatible server works; the profile's voice wins over the settings' voice.
 */
export function createSessionModels(settings: ModelSettings, profileVoice?: string): SessionModels {
  const apiKey = requireOpenAIKey(settings);
  const baseURL = settings.baseURL;
  const classifierLlm = new openai.LLM({ model: settings.llmModel, apiKey, baseURL });
  if (settings.mode === 'realtime') {
    return {
      llm: new openai.realtime.RealtimeModel({
        model: settings.realtimeModel,
        voice: profileVoice ?? settings.voice ?? DEFAULT_REALTIME_VOICE,
        apiKey,
        baseURL,
      }),
      classifierLlm,
    };
  }
  return {
    llm: classifierLlm,
    stt: new openai.STT({ model: settings.sttModel, apiKey, baseURL }),
    tts: new openai.TTS({
      model: settings.ttsModel,
      voice: (profileVoice ?? settings.voice ?? DEFAULT_TTS_VOICE) as openai.TTSVoices,
      apiKey,
      baseURL,
    }),
    classifierLlm,
  };
}
