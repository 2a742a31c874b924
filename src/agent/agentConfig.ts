import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseEnv } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import { SECOND } from '../core/time.js';
import { profilesFileSetting, type CallLimits } from './profiles.js';

export { DEFAULT_PROFILES_FILE } from './profiles.js';
export const DEFAULT_PROFILE_NAME = 'default';
export const DEFAULT_MODEL_MODE = 'realtime';
export const DEFAULT_REALTIME_MODEL = 'gpt-realtime';
export const DEFAULT_LLM_MODEL = 'gpt-4.1-mini';
export const DEFAULT_STT_MODEL = 'gpt-4o-mini-transcribe';
export const DEFAULT_TTS_MODEL = 'gpt-4o-mini-tts';
/** Voices differ between the realtime API and the TTS endpoint; each mode has its own default. */
export const DEFAULT_REALTIME_VOICE = 'marin';
export const DEFAULT_TTS_VOICE = 'alloy';
export const DEFAULT_MAX_CALL_DURATION_S = 600;
export const DEFAULT_SILENCE_TIMEOUT_S = 20;
export const DEFAULT_PARTICIPANT_WAIT_S = 90;
export const DEFAULT_TRANSFER_CONFIRM_TIMEOUT_S = 20;
export const DEFAULT_TRANSFER_RINGING_TIMEOUT_S = 30;
export const DEFAULT_VOICEMAIL_PAUSE_MS = 1000;
/**
 * Longest a warm transfer may keep the caller on hold, from the hold to the operator joining them: the operator's
 * ringing (AGENT_TRANSFER_RINGING_TIMEOUT_S, 30 s) plus a briefing of a minute at most. After it the caller is taken
 * off hold and told the transfer did not go through, and the operator's leg is hung up.
 */
export const DEFAULT_WARM_TRANSFER_TIMEOUT_S = 90;
/**
 * How long the worker waits for a job process to acknowledge a shutdown before it kills it (agents-js'
 * `shutdownProcessTimeout`). agents-js' 60 s default held every SIGTERM that arrived while an idle process was still
 * warming up for the full minute (agents-js 1.9 never acknowledges it then); a call's own shutdown (report the
 * outcome, delete the room) takes well under a second.
 */
export const DEFAULT_JOB_SHUTDOWN_TIMEOUT_MS = 10 * SECOND;
/** Where outcomes wait while Redis is away (src/agent/outcomeSpool.ts); one subdirectory per QUEUE_PREFIX. */
export const DEFAULT_OUTCOME_SPOOL_DIR = join(tmpdir(), 'dialer-agent-outcomes');

const MAX_PORT = 65535;

const positive = (name: string) => z.coerce.number({ error: `${name} must be a number` }).positive(`${name} must be > 0`);
const nonNegative = (name: string) => z.coerce.number({ error: `${name} must be a number` }).nonnegative(`${name} must be ≥ 0`);

/** Environment variables only the agent reads (the shared ones live in src/core/config.ts). */
const agentEnvSchema = z.object({
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_BASE_URL: z.string().url('OPENAI_BASE_URL must be a URL like http://127.0.0.1:8000/v1').optional(),
  AGENT_MODEL_MODE: z
    .enum(['realtime', 'pipeline'], { error: 'AGENT_MODEL_MODE must be "realtime" or "pipeline"' })
    .default(DEFAULT_MODEL_MODE),
  AGENT_REALTIME_MODEL: z.string().min(1).default(DEFAULT_REALTIME_MODEL),
  AGENT_LLM_MODEL: z.string().min(1).default(DEFAULT_LLM_MODEL),
  AGENT_STT_MODEL: z.string().min(1).default(DEFAULT_STT_MODEL),
  AGENT_TTS_MODEL: z.string().min(1).default(DEFAULT_TTS_MODEL),
  AGENT_VOICE: z.string().min(1).optional(),
  AGENT_PROFILES_FILE: profilesFileSetting,
  AGENT_DEFAULT_PROFILE: z.string().min(1).default(DEFAULT_PROFILE_NAME),
  AGENT_MAX_CALL_DURATION_S: positive('AGENT_MAX_CALL_DURATION_S').default(DEFAULT_MAX_CALL_DURATION_S),
  AGENT_SILENCE_TIMEOUT_S: positive('AGENT_SILENCE_TIMEOUT_S').default(DEFAULT_SILENCE_TIMEOUT_S),
  AGENT_PARTICIPANT_WAIT_S: positive('AGENT_PARTICIPANT_WAIT_S').default(DEFAULT_PARTICIPANT_WAIT_S),
  AGENT_TRANSFER_CONFIRM_TIMEOUT_S: positive('AGENT_TRANSFER_CONFIRM_TIMEOUT_S').default(DEFAULT_TRANSFER_CONFIRM_TIMEOUT_S),
  AGENT_TRANSFER_RINGING_TIMEOUT_S: positive('AGENT_TRANSFER_RINGING_TIMEOUT_S').default(DEFAULT_TRANSFER_RINGING_TIMEOUT_S),
  AGENT_WARM_TRANSFER_TIMEOUT_S: positive('AGENT_WARM_TRANSFER_TIMEOUT_S').default(DEFAULT_WARM_TRANSFER_TIMEOUT_S),
  AGENT_VOICEMAIL_PAUSE_MS: nonNegative('AGENT_VOICEMAIL_PAUSE_MS').default(DEFAULT_VOICEMAIL_PAUSE_MS),
  AGENT_OUTCOME_SPOOL_DIR: z.string().min(1).default(DEFAULT_OUTCOME_SPOOL_DIR),
  AGENT_JOB_SHUTDOWN_TIMEOUT_MS: z.coerce
    .number({ error: 'AGENT_JOB_SHUTDOWN_TIMEOUT_MS must be a number of milliseconds' })
    .int('AGENT_JOB_SHUTDOWN_TIMEOUT_MS must be a whole number of milliseconds')
    .positive('AGENT_JOB_SHUTDOWN_TIMEOUT_MS must be > 0')
    .default(DEFAULT_JOB_SHUTDOWN_TIMEOUT_MS),
  AGENT_HTTP_PORT: z.coerce
    .number({ error: 'AGENT_HTTP_PORT must be a port number' })
    .int('AGENT_HTTP_PORT must be a port number')
    .min(1, 'AGENT_HTTP_PORT must be 1–65535')
    .max(MAX_PORT, 'AGENT_HTTP_PORT must be 1–65535')
    .optional(),
});

export type ModelMode = 'realtime' | 'pipeline';

/** Which OpenAI-compatible models the agent talks through. */
export interface ModelSettings {
  mode: ModelMode;
  apiKey: string | undefined;
  baseURL: string | undefined;
  realtimeModel: string;
  llmModel: string;
  sttModel: string;
  ttsModel: string;
  /** Undefined: the mode's default voice (a profile may still pick its own). */
  voice: string | undefined;
}

export type { CallLimits } from './profiles.js';

/** The agent's validated settings. */
export interface AgentSettings {
  models: ModelSettings;
  profilesFile: string;
  defaultProfile: string;
  limits: CallLimits;
  /** How long to wait for the consumer-dialed SIP participant to appear and answer. */
  participantWaitMs: number;
  /** How long a cold transfer may take before it counts as failed (the SIP participant must leave by then). */
  transferConfirmTimeoutMs: number;
  /** Ringing timeout for transfer destinations and warm-transfer operators. */
  transferRingingTimeoutS: number;
  /** AGENT_WARM_TRANSFER_TIMEOUT_S: longest a warm transfer keeps the caller on hold before it is given up. */
  warmTransferTimeoutMs: number;
  /** Pause after the voicemail message before hanging up. */
  voicemailPauseMs: number;
  /**
   * Directory where a call's outcome waits until Redis takes it (job processes write, the worker's main process
   * replays). On a container, a volume keeps it across restarts.
   */
  outcomeSpoolDir: string;
  /**
   * How long the worker waits for a job process to acknowledge a shutdown (drain, SIGTERM) before it kills it; an idle
   * process still warming up never acknowledges, so a stop meeting one takes this long.
   */
  jobShutdownTimeoutMs: number;
  /**
   * Port of the worker's health-check HTTP server; undefined: agents-js' default (8081 for `start`, any free port
   * for `dev`). Set it to run more than one worker on a host.
   */
  httpPort: number | undefined;
}

/** Validates the agent's environment; throws ConfigError naming every bad variable. */
export function loadAgentSettings(env: NodeJS.ProcessEnv = process.env): AgentSettings {
  const e = parseEnv(agentEnvSchema, env);
  return {
    models: {
      mode: e.AGENT_MODEL_MODE,
      apiKey: e.OPENAI_API_KEY,
      baseURL: e.OPENAI_BASE_URL,
      realtimeModel: e.AGENT_REALTIME_MODEL,
      llmModel: e.AGENT_LLM_MODEL,
      sttModel: e.AGENT_STT_MODEL,
      ttsModel: e.AGENT_TTS_MODEL,
      voice: e.AGENT_VOICE,
    },
    profilesFile: e.AGENT_PROFILES_FILE,
    defaultProfile: e.AGENT_DEFAULT_PROFILE,
    limits: {
      maxCallDurationMs: e.AGENT_MAX_CALL_DURATION_S * SECOND,
      silenceTimeoutMs: e.AGENT_SILENCE_TIMEOUT_S * SECOND,
    },
    participantWaitMs: e.AGENT_PARTICIPANT_WAIT_S * SECOND,
    transferConfirmTimeoutMs: e.AGENT_TRANSFER_CONFIRM_TIMEOUT_S * SECOND,
    transferRingingTimeoutS: e.AGENT_TRANSFER_RINGING_TIMEOUT_S,
    warmTransferTimeoutMs: e.AGENT_WARM_TRANSFER_TIMEOUT_S * SECOND,
    voicemailPauseMs: e.AGENT_VOICEMAIL_PAUSE_MS,
    outcomeSpoolDir: e.AGENT_OUTCOME_SPOOL_DIR,
    jobShutdownTimeoutMs: e.AGENT_JOB_SHUTDOWN_TIMEOUT_MS,
    httpPort: e.AGENT_HTTP_PORT,
  };
}

/** The OpenAI API key, or a ConfigError naming the variable (any value works for keyless local servers). */
export function requireOpenAIKey(models: ModelSettings): string {
  if (!models.apiKey) {
    throw new ConfigError('OPENAI_API_KEY is not set (for a keyless OpenAI-compatible server set any value, e.g. "local")');
  }
  return models.apiKey;
}
