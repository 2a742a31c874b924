import { ServerError } from 'livekit-server-sdk';

/** Outcomes a failed dial can end in (never-connected calls). */
export type DialFailureOutcome = 'busy' | 'no_answer' | 'declined' | 'invalid_number' | 'failed';

/**
 * What a failed CreateSIPParticipant means for the call:
 * - `retry`: the number may answer later (busy, no answer, far-end 5xx); `outcome` is the terminal outcome once attempts are used.
 * - `final`: the number's answer is definitive (declined, invalid) or the trunk is misconfigured; no retry.
 * - `platform`: no SIP status, so LiveKit or the network is the problem, not the number; the attempt is not spent.
 */
export type DialFailure =
  | { kind: 'retry'; outcome: 'busy' | 'no_answer' | 'failed'; sipStatusCode?: number; sipStatus?: string }
  | {
      kind: 'final';
      outcome: 'declined' | 'invalid_number' | 'failed';
      sipStatusCode: number;
      sipStatus: string;
      trunkConfigurationError: boolean;
    }
  | { kind: 'platform'; reason: string; httpStatus?: number };

/** LiveKit ends a call that rang out with 486, like a real busy; one that came this close to the timeout rang out. */
export const RING_OUT_TOLERANCE_MS = 250;
/**
 * Twirp codes LiveKit answers with, with no SIP status, when its SIP request to the callee timed out
 * ("sip request timed out"): the far end never answered, so the number, not the platform, is the cause.
 */
const SERVER_SIDE_TIMEOUT_CODES = new Set(['canceled', 'deadline_exceeded']);

const BUSY = new Set([486, 600]);
const NO_ANSWER = new Set([480, 408, 487]);
const DECLINED = new Set([603, 607, 608]);
const INVALID_NUMBER = new Set([404, 484, 604, 400]);
const TRUNK_AUTH = new Set([401, 403, 407]);
const SIP_SERVER_ERROR_MIN = 500;
const SIP_SERVER_ERROR_MAX = 599;

export interface DialTiming {
  /** How long the CreateSIPParticipant request took before it failed. */
  elapsedMs: number;
  ringingTimeoutMs: number;
}

function sipStatusOf(err: unknown): { code: number; status: string } | undefined {
  if (!(err instanceof ServerError)) return undefined;
  const raw = err.metadata?.sip_status_code;
  const code = raw === undefined || raw === '' ? NaN : Number(raw);
  if (!Number.isInteger(code) || code <= 0) return undefined;
  return { code, status: err.metadata?.sip_status ?? '' };
}

function describePlatformError(err: unknown): { reason: string; httpStatus?: number } {
  if (err instanceof ServerError) {
    return { reason: `LiveKit API error ${err.status}${err.code ? ` ${err.code}` : ''}: ${err.message}`, httpStatus: err.status };
  }
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return { reason: `${err.name}: ${err.message}${cause}` };
  }
  return { reason: String(err) };
}

/**
 * Classifies a CreateSIPParticipant failure by its SIP status code first (LiveKit maps SIP statuses onto HTTP
 * codes: a 429 or 403 carrying a sip_status_code is the callee's answer), and as platform trouble when there is none.
 */
export function classifySipError(err: unknown, timing: DialTiming): DialFailure {
  const sip = sipStatusOf(err);
  const reachedRingingTimeout = timing.elapsedMs >= timing.ringingTimeoutMs - RING_OUT_TOLERANCE_MS;
  if (!sip) {
    if (err instanceof ServerError && SERVER_SIDE_TIMEOUT_CODES.has(err.code ?? '') && reachedRingingTimeout) {
      return { kind: 'retry', outcome: 'no_answer', sipStatus: err.message };
    }
    return { kind: 'platform', ...describePlatformError(err) };
  }
  const { code, status } = sip;
  const base = { sipStatusCode: code, sipStatus: status };
  if (BUSY.has(code)) {
    const rangOut = code === 486 && reachedRingingTimeout;
    return { kind: 'retry', outcome: rangOut ? 'no_answer' : 'busy', ...base };
  }
  if (NO_ANSWER.has(code)) return { kind: 'retry', outcome: 'no_answer', ...base };
  if (DECLINED.has(code)) return { kind: 'final', outcome: 'declined', trunkConfigurationError: false, ...base };
  if (INVALID_NUMBER.has(code)) return { kind: 'final', outcome: 'invalid_number', trunkConfigurationError: false, ...base };
  if (TRUNK_AUTH.has(code)) return { kind: 'final', outcome: 'failed', trunkConfigurationError: true, ...base };
  if (code >= SIP_SERVER_ERROR_MIN && code <= SIP_SERVER_ERROR_MAX) return { kind: 'retry', outcome: 'failed', ...base };
  return { kind: 'final', outcome: 'failed', trunkConfigurationError: false, ...base };
}
