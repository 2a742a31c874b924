/**
 * The scripted phone network's data: what each number does when dialed, who answers, and how transfer targets
 * react to a SIP REFER. The same shape is accepted from code and from a JSON file (see sim/scenarios.example.json).
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { errorMessage } from '../core/errors.js';

const durationMs = z.number().int().nonnegative();

/** Who picks up, as data a text-mode callee harness can play. */
export const calleeSchema = z
  .object({
    kind: z.enum(['human', 'voicemail', 'ivr', 'wants_human']),
    /** What the callee says, in order: a human's "Hello?", a voicemail greeting, an IVR menu prompt. */
    lines: z.array(z.string()).optional(),
    name: z.string().optional(),
    /** IVR: digit(s) pressed → what the menu says next. */
    dtmf: z.record(z.string(), z.string()).optional(),
    /** Survey question key (or text) → the callee's answer. */
    surveyAnswers: z.record(z.string(), z.string()).optional(),
  })
  .strict();

const answerSchema = z
  .object({
    type: z.literal('answer'),
    /** Time from the INVITE to the 200 OK; at or past the ringing timeout the call rings out instead. */
    afterMs: durationMs.optional(),
    callee: calleeSchema.optional(),
    /** The callee hangs up this long after answering (the SIP participant disconnects). */
    hangupAfterMs: durationMs.optional(),
  })
  .strict();

/** Final SIP failures with a fixed status: the far end answers the INVITE with it after `afterMs`. */
const namedFailure = <T extends string>(type: T) =>
  z.object({ type: z.literal(type), afterMs: durationMs.optional(), reason: z.string().optional() }).strict();

const sipErrorSchema = z
  .object({
    type: z.literal('sip_error'),
    sipStatus: z.number().int().min(300).max(699),
    reason: z.string().optional(),
    afterMs: durationMs.optional(),
    /** Ring (sip.callStatus "ringing") before the final status. */
    ringFirst: z.boolean().optional(),
  })
  .strict();

const serverErrorSchema = z
  .object({
    type: z.literal('server_error'),
    sipStatus: z.number().int().min(500).max(599).optional(),
    reason: z.string().optional(),
    afterMs: durationMs.optional(),
  })
  .strict();

const trunkAuthFailureSchema = z
  .object({
    type: z.literal('trunk_auth_failure'),
    sipStatus: z.union([z.literal(401), z.literal(403), z.literal(407)]).optional(),
    afterMs: durationMs.optional(),
    /**
     * How livekit/sip gives up on a 401/407 challenge (pkg/sip/outbound.go `Invite`), all HTTP 412
     * failed_precondition with no SIP status: `max_retry` (the trunk's credentials are refused five times),
     * `missing_credentials` (the trunk has none), `no_header` (the challenge lacks its header). Default: `max_retry`
     * when the trunk has credentials, else `missing_credentials`.
     */
    failure: z.enum(['max_retry', 'missing_credentials', 'no_header']).optional(),
  })
  .strict();

/**
 * How a call that rings out fails, as different LiveKit versions answer it:
 * - `busy`: SIP 486 Busy Here (HTTP 429 resource_exhausted), as this project's brief states (livekit/sip#785 is
 *   the 486 sent on inbound ring-outs);
 * - `timeout`: what livekit/sip's outbound code returns today: Twirp `canceled` (HTTP 408) "sip request timed out",
 *   no SIP status (pkg/sip/outbound.go `sipResponse`);
 * - `deadline`: the race livekit/sip#857 reports (about 1 in 1000 ring-outs): the ringing timeout meets an answer,
 *   `context.DeadlineExceeded` after the INVITE is re-coded by `afterInvite` (pkg/sip/errors.go) to Twirp
 *   `failed_precondition` (HTTP 412) "context deadline exceeded", no SIP status, at the ringing timeout.
 */
export const RING_OUT_MODES = ['busy', 'timeout', 'deadline'] as const;

export const behaviorSchema = z.discriminatedUnion('type', [
  answerSchema,
  namedFailure('busy'), // 486 Busy Here
  namedFailure('unavailable'), // 480 Temporarily Unavailable
  namedFailure('not_found'), // 404 Not Found
  namedFailure('decline'), // 603 Decline, after ringing
  namedFailure('unwanted'), // 607 Unwanted
  namedFailure('rejected'), // 608 Rejected
  /** Rings until the ringing timeout; `ringOut` overrides the network's ring-out mode for this attempt. */
  z.object({ type: z.literal('ring_out'), ringOut: z.enum(RING_OUT_MODES).optional() }).strict(),
  trunkAuthFailureSchema,
  serverErrorSchema,
  sipErrorSchema,
  /** The platform itself fails (no SIP node): HTTP 503 `unavailable`, no SIP status, no participant. */
  z.object({ type: z.literal('platform_unavailable') }).strict(),
  /** Nothing comes back: the request hangs until LiveKit's own deadline (`afterMs`, default LiveKit's). */
  z.object({ type: z.literal('request_timeout'), afterMs: durationMs.optional() }).strict(),
]);

const numberScriptObject = z
  .object({
    /** Behaviour per attempt on this number: attempt n uses sequence[n-1]; the last one repeats. */
    sequence: z.array(behaviorSchema).min(1),
    /** The first K attempts fail with HTTP 503 `unavailable` (no SIP status) before the sequence starts. */
    platformFailures: z.number().int().nonnegative().optional(),
  })
  .strict();

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A number's script: a behaviour, `{sequence}`, or `{platformFailures, behavior}` — normalised to `{sequence}`. */
export const numberScriptSchema = z.preprocess((value) => {
  if (!isPlainObject(value) || 'sequence' in value) return value;
  if ('behavior' in value) {
    const { behavior, ...rest } = value;
    return { ...rest, sequence: [behavior] };
  }
  if ('platformFailures' in value) return value;
  return { sequence: [value] };
}, numberScriptObject);

export const transferBehaviorSchema = z.discriminatedUnion('result', [
  z
    .object({
      result: z.literal('accept'),
      /** The REFER's outcome is known (request returns 200) this long after the request. */
      respondAfterMs: durationMs.optional(),
      /** The SIP participant leaves the room this long after the request returned. */
      afterMs: durationMs.optional(),
    })
    .strict(),
  z
    .object({
      result: z.literal('reject'),
      sipStatus: z.number().int().min(300).max(699).optional(),
      reason: z.string().optional(),
      /** Return 200 at once (the Node SDK's early resolve, livekit/node-sdks#606); the participant stays. */
      asyncReject: z.boolean().optional(),
      afterMs: durationMs.optional(),
    })
    .strict(),
  z
    .object({
      result: z.literal('no_answer'),
      /** Return 200 at once; the participant stays. Otherwise the request fails when the ringing timeout ends. */
      asyncReject: z.boolean().optional(),
    })
    .strict(),
]);

/** E.164: "+" then up to 15 digits. */
export const E164_PATTERN = /^\+[1-9]\d{1,14}$/;

/** Transfer targets as TransferSIPParticipant accepts them. */
export const TRANSFER_TARGET_PATTERN = /^<?(tel:|sips?:)/;

/** Record keys are checked here rather than by a key schema, so the message names the offending key. */
function keysMatch(pattern: RegExp, requirement: string) {
  return (record: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    for (const key of Object.keys(record)) {
      if (!pattern.test(key)) ctx.addIssue({ code: 'custom', message: `key "${key}" ${requirement}`, path: [key] });
    }
  };
}

export const scenarioSchema = z
  .object({
    description: z.string().optional(),
    /** How a call that rings out fails (see RING_OUT_MODES): `busy` (default), `timeout` or `deadline`. */
    ringOut: z.enum(RING_OUT_MODES).optional(),
    default: numberScriptSchema.optional(),
    numbers: z
      .record(z.string(), numberScriptSchema)
      .superRefine(keysMatch(E164_PATTERN, 'must be an E.164 number such as "+15551230000"'))
      .optional(),
    transfers: z
      .record(z.string(), transferBehaviorSchema)
      .superRefine(keysMatch(TRANSFER_TARGET_PATTERN, 'must be a tel: or sip: URI such as "tel:+15551230000"'))
      .optional(),
    defaultTransfer: transferBehaviorSchema.optional(),
  })
  .strict();

export type Callee = z.infer<typeof calleeSchema>;
export type Behavior = z.infer<typeof behaviorSchema>;
export type BehaviorType = Behavior['type'];
export type NumberScript = z.infer<typeof numberScriptSchema>;
/** What `setBehavior` accepts: one behaviour or a full script. */
export type NumberScriptInput = z.input<typeof numberScriptSchema>;
export type TransferBehavior = z.infer<typeof transferBehaviorSchema>;
export type RingOutMode = (typeof RING_OUT_MODES)[number];
export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;

/** A scenario that failed validation; `message` lists every problem with its path. */
export class ScenarioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScenarioError';
  }
}

function fail(source: string, error: z.ZodError): never {
  throw new ScenarioError(`invalid phone network scenario (${source}):\n${z.prettifyError(error)}`);
}

export function parseScenario(input: unknown, source = 'scenario'): Scenario {
  const result = scenarioSchema.safeParse(input);
  if (!result.success) fail(source, result.error);
  return result.data;
}

export function parseNumberScript(input: unknown, source = 'behaviour'): NumberScript {
  const result = numberScriptSchema.safeParse(input);
  if (!result.success) fail(source, result.error);
  return result.data;
}

export function parseTransferBehavior(input: unknown, source = 'transfer behaviour'): TransferBehavior {
  const result = transferBehaviorSchema.safeParse(input);
  if (!result.success) fail(source, result.error);
  return result.data;
}

export async function loadScenarioFile(path: string): Promise<Scenario> {
  const text = await readFile(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScenarioError(`invalid phone network scenario (${path}): not JSON: ${errorMessage(err)}`);
  }
  return parseScenario(json, path);
}
