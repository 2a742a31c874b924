/**
 * The scripted phone network: which behaviour a dialed number shows on each attempt, and what that behaviour
 * means on the wire (when it rings, when it answers or fails, with which LiveKit error).
 */
import { SECOND } from '../core/time.js';
import {
  type Behavior,
  type Callee,
  type NumberScript,
  type NumberScriptInput,
  type RingOutMode,
  type Scenario,
  type ScenarioInput,
  type TransferBehavior,
  parseNumberScript,
  parseScenario,
  parseTransferBehavior,
} from './scenarioSchema.js';
import {
  type DisconnectReasonName,
  LIVEKIT_MESSAGES,
  type TwirpError,
  disconnectReasonForSipStatus,
  psrpcError,
  sipFailureError,
  sipReasonPhrase,
} from './twirpErrors.js';

/** 180 Ringing arrives this long after the INVITE for callees that ring. */
export const RINGING_AFTER_MS = 100;
/** A callee with no `afterMs` answers after this long. */
export const DEFAULT_ANSWER_AFTER_MS = 500;
/** Immediate rejections (busy, not found…) with no `afterMs` come back after this long. */
export const DEFAULT_REJECT_AFTER_MS = 100;
/** A callee who declines (603) with no `afterMs` lets it ring this long first. */
export const DEFAULT_DECLINE_AFTER_MS = 300;
/** livekit/sip `defaultRingingTimeout`, used when the request carries no ringing_timeout. */
export const LIVEKIT_DEFAULT_RINGING_TIMEOUT_MS = 180 * SECOND;
/** livekit-server's own deadline for CreateSIPParticipant (pkg/service/sip.go): 30 s, or 80 s when waiting. */
export const LIVEKIT_CREATE_DEADLINE_MS = 30 * SECOND;
export const LIVEKIT_CREATE_WAIT_DEADLINE_MS = 80 * SECOND;
/** livekit-server's default transfer deadline when the request has no ringing_timeout. */
export const LIVEKIT_TRANSFER_DEADLINE_MS = 30 * SECOND;
/** Transfer defaults: when the REFER outcome is known, and when the transferred participant then leaves. */
export const DEFAULT_TRANSFER_RESPOND_AFTER_MS = 100;
/** livekit-sip v1.8.0 hangs the transferred leg up about 1.0 s after the REFER's NOTIFY 200 (test/livekit, transfer). */
export const DEFAULT_TRANSFER_LEAVE_AFTER_MS = 1000;
export const DEFAULT_TRANSFER_REJECT_STATUS = 603;

const SIP_BUSY_HERE = 486;
const SIP_TEMPORARILY_UNAVAILABLE = 480;
const SIP_NOT_FOUND = 404;
const SIP_DECLINE = 603;
const SIP_UNWANTED = 607;
const SIP_REJECTED = 608;
const SIP_SERVICE_UNAVAILABLE = 503;
const SIP_FORBIDDEN = 403;
const SIP_UNAUTHORIZED = 401;

const DEFAULT_LINES: Readonly<Record<Callee['kind'], readonly string[]>> = {
  human: ['Hello?'],
  voicemail: ["Hi, you've reached this number's voicemail. Please leave a message after the beep."],
  ivr: ['Thank you for calling. For sales, press 1. For support, press 2. To repeat this menu, press 9.'],
  wants_human: ['Hello?', 'Is this a robot? I want to talk to a real person.'],
};

/** The callee with its default lines filled in. */
export function resolveCallee(callee: Callee | undefined): Callee {
  const base: Callee = callee ?? { kind: 'human' };
  const lines = base.lines && base.lines.length > 0 ? base.lines : [...DEFAULT_LINES[base.kind]];
  return { ...base, lines };
}

/** What a call will do, in ms from the moment the request arrived. */
export type NetworkCallPlan =
  | { kind: 'platform_unavailable'; error: TwirpError }
  | { kind: 'answer'; ringAtMs: number | undefined; answerAtMs: number; callee: Callee; hangupAfterMs: number | undefined }
  | {
      kind: 'fail';
      ringAtMs: number | undefined;
      failAtMs: number;
      error: TwirpError;
      disconnectReason: DisconnectReasonName;
      reason: string;
    }
  | { kind: 'hang'; ringAtMs: undefined; giveUpAtMs: number; error: TwirpError };

export interface PlanContext {
  /** The request's ringing timeout, or LiveKit's default when absent. */
  ringingTimeoutMs: number;
  waitUntilAnswered: boolean;
  ringOut: RingOutMode;
  /** Whether the trunk has digest credentials (decides LiveKit's message for a 401/407). */
  trunkHasCredentials: boolean;
}

/**
 * The error and DisconnectReason of a ring-out in each mode (see RING_OUT_MODES): 486 is USER_REJECTED
 * (`classifyInviteError`), "sip request timed out" USER_UNAVAILABLE (`ErrSIPRequestTimeout`), and the deadline race
 * UNKNOWN_REASON (`context.DeadlineExceeded`, a server error re-coded by `afterInvite`) in livekit/sip pkg/sip/errors.go.
 */
const RING_OUT_RESULTS: Readonly<Record<RingOutMode, () => { error: TwirpError; disconnectReason: DisconnectReasonName }>> = {
  busy: () => ({ error: sipFailureError(SIP_BUSY_HERE, sipReasonPhrase(SIP_BUSY_HERE)), disconnectReason: 'USER_REJECTED' }),
  timeout: () => ({ error: psrpcError('canceled', LIVEKIT_MESSAGES.sipRequestTimedOut), disconnectReason: 'USER_UNAVAILABLE' }),
  deadline: () => ({
    error: psrpcError('failed_precondition', LIVEKIT_MESSAGES.contextDeadlineExceeded),
    disconnectReason: 'UNKNOWN_REASON',
  }),
};

function ringOutFailure(context: PlanContext, mode: RingOutMode = context.ringOut): NetworkCallPlan {
  return {
    kind: 'fail',
    ringAtMs: Math.min(RINGING_AFTER_MS, context.ringingTimeoutMs),
    failAtMs: context.ringingTimeoutMs,
    ...RING_OUT_RESULTS[mode](),
    reason: 'ring_out',
  };
}

/** livekit/sip's words for each way a digest challenge fails (pkg/sip/protocol.go). */
const TRUNK_AUTH_MESSAGES = {
  max_retry: LIVEKIT_MESSAGES.authMaxRetry,
  missing_credentials: LIVEKIT_MESSAGES.authMissingCredentials,
  no_header: LIVEKIT_MESSAGES.authNoHeader,
} as const;

function sipFailurePlan(
  sipStatusCode: number,
  reason: string | undefined,
  afterMs: number,
  ringFirst: boolean,
  label: string,
  context: PlanContext,
): NetworkCallPlan {
  if (ringFirst && afterMs >= context.ringingTimeoutMs) return ringOutFailure(context);
  return {
    kind: 'fail',
    ringAtMs: ringFirst ? Math.min(RINGING_AFTER_MS, afterMs) : undefined,
    failAtMs: afterMs,
    error: sipFailureError(sipStatusCode, reason ?? sipReasonPhrase(sipStatusCode)),
    disconnectReason: disconnectReasonForSipStatus(sipStatusCode),
    reason: label,
  };
}

/** Turns a behaviour into the timeline and wire results LiveKit would produce for it. */
export function planCall(behavior: Behavior, context: PlanContext): NetworkCallPlan {
  switch (behavior.type) {
    case 'answer': {
      const answerAtMs = behavior.afterMs ?? DEFAULT_ANSWER_AFTER_MS;
      if (answerAtMs >= context.ringingTimeoutMs) return ringOutFailure(context);
      return {
        kind: 'answer',
        ringAtMs: answerAtMs > RINGING_AFTER_MS ? RINGING_AFTER_MS : undefined,
        answerAtMs,
        callee: resolveCallee(behavior.callee),
        hangupAfterMs: behavior.hangupAfterMs,
      };
    }
    case 'ring_out':
      return ringOutFailure(context, behavior.ringOut);
    case 'busy':
      return sipFailurePlan(SIP_BUSY_HERE, behavior.reason, behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS, false, 'busy', context);
    case 'unavailable':
      return sipFailurePlan(
        SIP_TEMPORARILY_UNAVAILABLE,
        behavior.reason,
        behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS,
        false,
        'unavailable',
        context,
      );
    case 'not_found':
      return sipFailurePlan(SIP_NOT_FOUND, behavior.reason, behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS, false, 'not_found', context);
    case 'decline':
      return sipFailurePlan(SIP_DECLINE, behavior.reason, behavior.afterMs ?? DEFAULT_DECLINE_AFTER_MS, true, 'decline', context);
    case 'unwanted':
      return sipFailurePlan(SIP_UNWANTED, behavior.reason, behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS, false, 'unwanted', context);
    case 'rejected':
      return sipFailurePlan(SIP_REJECTED, behavior.reason, behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS, false, 'rejected', context);
    case 'server_error':
      return sipFailurePlan(
        behavior.sipStatus ?? SIP_SERVICE_UNAVAILABLE,
        behavior.reason,
        behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS,
        false,
        'server_error',
        context,
      );
    case 'sip_error':
      return sipFailurePlan(
        behavior.sipStatus,
        behavior.reason,
        behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS,
        behavior.ringFirst ?? false,
        'sip_error',
        context,
      );
    case 'trunk_auth_failure': {
      const status = behavior.sipStatus ?? SIP_UNAUTHORIZED;
      const afterMs = behavior.afterMs ?? DEFAULT_REJECT_AFTER_MS;
      if (status === SIP_FORBIDDEN) return sipFailurePlan(status, undefined, afterMs, false, 'trunk_auth_failure', context);
      // livekit/sip answers a 401/407 challenge itself; when that fails it reports an auth error, no SIP status.
      const message = TRUNK_AUTH_MESSAGES[behavior.failure ?? (context.trunkHasCredentials ? 'max_retry' : 'missing_credentials')];
      return {
        kind: 'fail',
        ringAtMs: undefined,
        failAtMs: afterMs,
        error: psrpcError('failed_precondition', message),
        disconnectReason: 'USER_REJECTED',
        reason: 'trunk_auth_failure',
      };
    }
    case 'platform_unavailable':
      return { kind: 'platform_unavailable', error: psrpcError('unavailable', LIVEKIT_MESSAGES.noResponseFromServers) };
    case 'request_timeout': {
      const deadline = context.waitUntilAnswered ? LIVEKIT_CREATE_WAIT_DEADLINE_MS : LIVEKIT_CREATE_DEADLINE_MS;
      return {
        kind: 'hang',
        ringAtMs: undefined,
        giveUpAtMs: behavior.afterMs ?? deadline,
        error: psrpcError('deadline_exceeded', LIVEKIT_MESSAGES.requestTimedOut),
      };
    }
  }
}

/** What a transfer target will do with a REFER. */
export type TransferPlan =
  | { kind: 'accept'; respondAfterMs: number; leaveAfterMs: number }
  | { kind: 'reject'; sipStatusCode: number; sipStatus: string; silent: boolean; afterMs: number }
  | { kind: 'no_answer'; silent: boolean };

export function planTransfer(behavior: TransferBehavior): TransferPlan {
  switch (behavior.result) {
    case 'accept':
      return {
        kind: 'accept',
        respondAfterMs: behavior.respondAfterMs ?? DEFAULT_TRANSFER_RESPOND_AFTER_MS,
        leaveAfterMs: behavior.afterMs ?? DEFAULT_TRANSFER_LEAVE_AFTER_MS,
      };
    case 'reject': {
      const sipStatusCode = behavior.sipStatus ?? DEFAULT_TRANSFER_REJECT_STATUS;
      return {
        kind: 'reject',
        sipStatusCode,
        sipStatus: behavior.reason ?? sipReasonPhrase(sipStatusCode),
        silent: behavior.asyncReject ?? false,
        afterMs: behavior.afterMs ?? DEFAULT_TRANSFER_RESPOND_AFTER_MS,
      };
    }
    case 'no_answer':
      return { kind: 'no_answer', silent: behavior.asyncReject ?? false };
  }
}

const DEFAULT_SCRIPT: NumberScript = { sequence: [{ type: 'answer' }] };
const DEFAULT_TRANSFER: TransferBehavior = { result: 'accept' };
/**
 * What livekit-sip v1.8.0 answers a ring-out with, seen on the real stack (test/livekit, simFidelity): Twirp
 * `canceled` (HTTP 408) "sip request timed out", no SIP status, at the ringing timeout, and a CANCEL to the callee.
 */
const DEFAULT_RING_OUT: RingOutMode = 'timeout';

/** The behaviour a dialed number shows, by attempt. */
export interface AttemptBehavior {
  attempt: number;
  behavior: Behavior;
}

function scriptBehavior(script: NumberScript, attempt: number): Behavior {
  const platformFailures = script.platformFailures ?? 0;
  if (attempt <= platformFailures) return { type: 'platform_unavailable' };
  const index = Math.min(attempt - platformFailures, script.sequence.length) - 1;
  const behavior = script.sequence[index];
  return behavior ?? { type: 'answer' };
}

/** Number keys as the scenario spells them; a dialed number without "+" also matches its "+" form. */
function lookupKeys(number: string): string[] {
  const trimmed = number.replace(/[\s()-]/g, '');
  return trimmed.startsWith('+') ? [trimmed] : [trimmed, `+${trimmed}`];
}

export class PhoneNetwork {
  private scripts = new Map<string, NumberScript>();
  private defaultScript: NumberScript = DEFAULT_SCRIPT;
  private transfers = new Map<string, TransferBehavior>();
  private defaultTransfer: TransferBehavior = DEFAULT_TRANSFER;
  private attemptCounts = new Map<string, number>();
  private ringOutMode: RingOutMode = DEFAULT_RING_OUT;

  constructor(scenario?: ScenarioInput) {
    if (scenario) this.load(scenario);
  }

  /** Replaces the whole network (numbers, default, transfers, ring-out mode) and forgets attempt counts. */
  load(scenario: ScenarioInput | Scenario): void {
    const parsed = parseScenario(scenario);
    this.scripts = new Map(Object.entries(parsed.numbers ?? {}));
    this.defaultScript = parsed.default ?? DEFAULT_SCRIPT;
    this.transfers = new Map(Object.entries(parsed.transfers ?? {}));
    this.defaultTransfer = parsed.defaultTransfer ?? DEFAULT_TRANSFER;
    this.ringOutMode = parsed.ringOut ?? DEFAULT_RING_OUT;
    this.attemptCounts.clear();
  }

  /** Sets one number's behaviour (or `{sequence}` script); its attempt count starts again at 1. */
  setBehavior(number: string, behavior: NumberScriptInput): void {
    const key = lookupKeys(number)[0] ?? number;
    this.scripts.set(key, parseNumberScript(behavior, `behaviour for ${number}`));
    this.attemptCounts.delete(key);
  }

  /** Sets what every number without its own script does. */
  setDefault(behavior: NumberScriptInput): void {
    this.defaultScript = parseNumberScript(behavior, 'default behaviour');
  }

  /** Sets how a transfer target (`tel:+…` or `sip:user@host`) answers a REFER. */
  setTransfer(transferTo: string, behavior: TransferBehavior): void {
    this.transfers.set(transferTo, parseTransferBehavior(behavior, `transfer behaviour for ${transferTo}`));
  }

  setDefaultTransfer(behavior: TransferBehavior): void {
    this.defaultTransfer = parseTransferBehavior(behavior, 'default transfer behaviour');
  }

  setRingOut(mode: RingOutMode): void {
    this.ringOutMode = mode;
  }

  get ringOut(): RingOutMode {
    return this.ringOutMode;
  }

  /** How many attempts reached the network for this number. */
  attempts(number: string): number {
    return this.attemptCounts.get(this.keyFor(number)) ?? 0;
  }

  /** Counts one more attempt on `number` and returns the behaviour that attempt gets. */
  nextAttempt(number: string): AttemptBehavior {
    const key = this.keyFor(number);
    const attempt = (this.attemptCounts.get(key) ?? 0) + 1;
    this.attemptCounts.set(key, attempt);
    return { attempt, behavior: scriptBehavior(this.scripts.get(key) ?? this.defaultScript, attempt) };
  }

  transferBehavior(transferTo: string): TransferBehavior {
    const inner = transferTo.startsWith('<') && transferTo.endsWith('>') ? transferTo.slice(1, -1) : transferTo;
    return this.transfers.get(inner) ?? this.transfers.get(transferTo) ?? this.defaultTransfer;
  }

  /** The scenario key a number resolves to (its own entry when it has one). */
  private keyFor(number: string): string {
    const keys = lookupKeys(number);
    return keys.find((key) => this.scripts.has(key)) ?? keys[0] ?? number;
  }
}
