/**
 * The HTTP API's request and answer shapes, as zod schemas. They validate every request (unknown fields are refused:
 * strict objects) and are the source of the OpenAPI document (`/openapi.json`, src/api/openapi.ts), so the document
 * and the checks cannot drift apart. Field names are snake_case, like the guide's jobs pushed onto `calls`.
 */
import { z } from 'zod';
import { isTimeZone } from '../core/callWindow.js';
import { CALL_STATES, OUTCOMES, outcomeSchema } from '../core/outcomes.js';
import { callMetadataSchema, idSchema } from '../core/queues.js';
import { MAX_CALL_PRIORITY } from '../producer/enqueueCalls.js';
import { fieldErrorSchema, problemSchema } from './problem.js';

/** Most calls one `POST /v1/campaigns/{id}/calls` takes; larger lists are split by the client. */
export const MAX_BATCH_CALLS = 10_000;
/** Longest idempotency key (`key` field or `Idempotency-Key` header), as the CLI's `--key`. */
export const MAX_KEY_CHARS = 512;
/** Longest phone number text accepted (E.164 is at most 16 characters; room for spaces and an extension). */
const MAX_PHONE_NUMBER_TEXT = 64;
const MAX_PROFILE_NAME_CHARS = 128;
const DAYS_PER_WEEK = 7;
const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/**
 * Ids of the named schemas: each becomes `#/components/schemas/<id>` in the OpenAPI document. They are registered in
 * zod's global registry (`.meta({id})`), where `.describe()` keeps field descriptions too, so one conversion sees both.
 */
export const COMPONENT_IDS = new Set<string>();

/** Names `schema` as the component `id` (returns the named copy, which validates exactly as `schema` does). */
function component<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  COMPONENT_IDS.add(id);
  return schema.meta(description === undefined ? { id } : { id, description });
}

const instant = z.iso
  .datetime({ offset: true, error: 'expected an ISO 8601 date and time with a zone, like 2030-01-31T09:30:00Z' })
  .describe('ISO 8601 date and time with a zone (Z or ±hh:mm)');
const timestamp = z.iso.datetime({ offset: true }).describe('ISO 8601, UTC');

export const callMetadataBody = component(
  'CallMetadata',
  callMetadataSchema,
  'Flat object of string, number, boolean or null values (at most 16 KiB as JSON); fills {{placeholders}} in the agent instructions',
);

export const callWindowBody = component(
  'CallWindow',
  z.strictObject({
    from: z.string().regex(HH_MM, 'from must be HH:MM (24 h)').describe("local start, HH:MM (24 h), in the callee's time zone"),
    to: z.string().regex(HH_MM, 'to must be HH:MM (24 h)').describe('local end (exclusive), HH:MM; before `from` for a window across midnight'),
    time_zone: z.string().min(1).max(64).refine(isTimeZone, 'time_zone must be an IANA time zone such as America/New_York').describe('IANA time zone, e.g. America/New_York'),
    days: z.array(z.number().int().min(1).max(DAYS_PER_WEEK)).min(1).max(DAYS_PER_WEEK).optional().describe('ISO weekdays (1 = Monday … 7 = Sunday); every day when absent'),
  }),
  "Local hours (and weekdays) the call may ring, in the callee's time zone; outside them it waits without spending an attempt",
);

const phoneNumber = z.string().min(1, 'phone_number is empty').max(MAX_PHONE_NUMBER_TEXT).describe('E.164, e.g. +14155550123; an extension may follow (x136)');
const key = z.string().min(1, 'the key is empty: give one, or leave the field out').max(MAX_KEY_CHARS).describe('idempotency key: the same key in the same campaign names the same call');
const at = instant.describe('dial no earlier than this (ISO 8601 with a zone): up to 5 minutes past means now, at most 90 days ahead');
const expiresAt = instant.describe('give up (outcome `expired`) if not dialed by then: after `at`, at most 90 days ahead');
const agentProfile = z.string().min(1).max(MAX_PROFILE_NAME_CHARS).describe('agent profile name (profiles/profiles.json or AGENT_PROFILES_FILE)');
const priority = z.number().int().min(0).max(MAX_CALL_PRIORITY).describe(`0 (default) is dialed first; 1–${MAX_CALL_PRIORITY} wait behind every 0, lower first`);

export const createCallBody = component(
  'CreateCall',
  z.strictObject({
    phone_number: phoneNumber,
    campaign_id: idSchema.optional().describe('campaign id (default "default")'),
    metadata: callMetadataBody.optional(),
    at: at.optional(),
    key: key.optional(),
    expires_at: expiresAt.optional(),
    agent_profile: agentProfile.optional(),
    priority: priority.optional(),
    call_window: callWindowBody.optional(),
  }),
  'One call to enqueue',
);
export type CreateCallBody = z.infer<typeof createCallBody>;

export const batchCallBody = component(
  'BatchCall',
  z.strictObject({
    phone_number: phoneNumber,
    metadata: callMetadataBody.optional(),
    key: key.optional().describe('idempotency key of the row; rows without one are keyed by their number (a number is called once per campaign), as `import` does'),
    at: at.optional(),
    expires_at: expiresAt.optional(),
  }),
  'One row of a batch',
);
export type BatchCallBody = z.infer<typeof batchCallBody>;

export const createBatchBody = component(
  'CreateCallBatch',
  z.strictObject({
    calls: z.array(batchCallBody).min(1, 'calls is empty').max(MAX_BATCH_CALLS, `a batch holds at most ${MAX_BATCH_CALLS} calls: split it`),
    agent_profile: agentProfile.optional().describe('agent profile of every call of the batch'),
    priority: priority.optional(),
    call_window: callWindowBody.optional(),
  }),
  `Up to ${MAX_BATCH_CALLS} calls for one campaign; each row is checked on its own`,
);

/**
 * What the batch route parses first: the documented envelope with its rows left unchecked, so that each row is then
 * checked on its own against `batchCallBody` and a bad row is reported in the answer instead of refusing the batch.
 */
export const batchEnvelope = createBatchBody.extend({
  calls: z.array(z.unknown()).min(1, 'calls is empty').max(MAX_BATCH_CALLS, `a batch holds at most ${MAX_BATCH_CALLS} calls: split it`),
});

export const callCreated = component(
  'CallCreated',
  z.object({ call_id: z.string(), campaign_id: z.string() }),
  '201: the call was enqueued; 200: the same request was made before and this is its call',
);

export const batchRowResult = component(
  'BatchRowResult',
  z.object({
    index: z.number().int().min(0).describe('position of the row in `calls`'),
    status: z.enum(['created', 'duplicate', 'rejected']),
    call_id: z.string().optional(),
    errors: z.array(fieldErrorSchema).optional().describe('why the row was rejected (pointers into the request body)'),
  }),
);

export const batchResult = component(
  'CallBatchResult',
  z.object({
    campaign_id: z.string(),
    rows: z.number().int(),
    enqueued: z.number().int(),
    duplicates: z.number().int(),
    rejected: z.number().int(),
    results: z.array(batchRowResult).describe('one per row, in row order'),
  }),
);

/**
 * One call as `dialer report --json` lists it (results/campaignReport.ts reportCall), in snake_case: the same fields,
 * so the API and the CLI never disagree about a call.
 */
export const reportLineView = component(
  'CallReportLine',
  z.object({
    call_id: z.string(),
    phone_number: z.string().describe('E.164'),
    extension: z.string().optional().describe('digits dialed after the answer'),
    key: z.string().optional().describe('the idempotency key it was enqueued with'),
    outcome: z.enum([...OUTCOMES, 'pending']).describe('`pending` until the call ends'),
    state: z.enum(CALL_STATES).describe('queued → dialing → in_call → terminal, with waiting_retry between attempts'),
    attempts: z.number().int().describe('dial attempts made so far'),
    sip_status_code: z.number().int().optional(),
    sip_status: z.string().optional(),
    reason: z.string().optional(),
    metadata: z.record(z.string(), z.unknown()).describe('as it was enqueued'),
    enqueued_at: timestamp,
    first_attempt_at: timestamp.optional(),
    last_attempt_at: timestamp.optional(),
    ended_at: timestamp.optional(),
    due_at: timestamp.optional().describe('while the call waits for a time (a start time, a move, a retry delay): when it comes up'),
    expires_at: timestamp.optional().describe('while the call has not ended: when it expires if not dialed by then'),
    duration_s: z.number().optional().describe('seconds the callee was connected'),
    transfer: z.object({ mode: z.string(), target: z.string() }).optional(),
    survey_answers: z.array(z.object({ question: z.string(), answer: z.string() })).optional(),
    summary: z.string().optional(),
  }),
);

export const callView = component(
  'Call',
  reportLineView.extend({
    campaign_id: z.string(),
    attempt_log: z.array(
      z.object({
        attempt: z.number().int(),
        started_at: timestamp,
        ended_at: timestamp.optional(),
        result: z.string().optional(),
        dial_sent: z.boolean().describe("whether this attempt's dial went out (an attempt canceled while it waited for its CPS slot did not)"),
        sip_status_code: z.number().int().optional(),
        sip_status: z.string().optional(),
      }),
    ),
    transcript: z
      .array(z.object({ role: z.enum(['agent', 'callee', 'system']), text: z.string() }))
      .optional()
      .describe('only with ?transcript=true'),
  }),
  "A call's record: its report line, each attempt and, on request, the transcript",
);
export type CallView = z.infer<typeof callView>;
export type ReportLineView = z.infer<typeof reportLineView>;

export const callCanceled = component(
  'CallCanceled',
  z.object({ call_id: z.string(), campaign_id: z.string(), state: z.literal('terminal'), outcome: z.literal('canceled') }),
);

export const moveCallBody = component(
  'MoveCall',
  z.strictObject({
    at: instant.describe('the new time (ISO 8601 with a zone): up to 5 minutes past means now, at most 90 days ahead'),
    campaign_id: idSchema.optional().describe('its campaign (looked up when left out)'),
  }),
);

export const moveCallByKeyBody = component(
  'MoveCallByKey',
  z.strictObject({
    key: key.describe('the idempotency key the call was enqueued with in this campaign (`key` of POST /v1/calls or a batch row, `enqueue --key`, a CSV key column)'),
    at: instant.describe('the new time (ISO 8601 with a zone): up to 5 minutes past means now, at most 90 days ahead'),
  }),
);

export const callMoved = component('CallMoved', z.object({ call_id: z.string(), campaign_id: z.string(), at: timestamp.describe('when it comes up now') }));

export const campaignPaused = component(
  'CampaignPauseState',
  z.object({
    campaign_id: z.string(),
    paused: z.boolean(),
    changed: z.boolean().describe('false when the campaign already was in that state'),
    released: z.number().int().optional().describe('resume: held calls released at once'),
  }),
);

export const campaignCanceled = component(
  'CampaignCanceled',
  z.object({
    campaign_id: z.string(),
    canceled: z.number().int().describe('calls not yet ringing, now ended as `canceled`'),
    in_flight: z.number().int().describe('ringing or connected: left alone (the hang-up is the agent’s)'),
    already_ended: z.number().int(),
  }),
);

export const campaignReportView = component(
  'CampaignReport',
  z.object({
    campaign_id: z.string(),
    total: z.number().int(),
    pending: z.number().int().describe('calls not ended yet (never lost)'),
    paused: z.boolean(),
    by_outcome: z.partialRecord(outcomeSchema, z.number().int()),
    pick_up: z
      .object({ percent: z.number(), people: z.number().int(), dialed: z.number().int() })
      .optional()
      .describe('people reached (answered, transferred) over the ended calls dialed at least once; absent before any has ended'),
    calls: z.array(reportLineView),
  }),
  'The same figures as `dialer report --json`, in snake_case, plus whether the campaign is paused',
);

export const healthView = component('Health', z.object({ status: z.literal('ok') }));

export const readinessView = component(
  'Readiness',
  z.object({
    status: z.enum(['ready', 'not_ready']),
    checks: z.object({
      redis: z.object({ status: z.enum(['ok', 'fail']), detail: z.string().optional() }),
      consumers: z.object({
        status: z.enum(['ok', 'none', 'unknown', 'fail']).describe('ok: at least one dial worker is connected to the `calls` queue; unknown: Redis does not list clients'),
        count: z.number().int().optional(),
        detail: z.string().optional(),
      }),
    }),
  }),
);

component('Problem', problemSchema, 'RFC 9457 problem details, sent as application/problem+json');

/** `{id}` of call routes. */
export const callParams = z.strictObject({ id: idSchema.describe('call id') });
/** `{id}` of campaign routes. */
export const campaignParams = z.strictObject({ id: idSchema.describe('campaign id') });

const queryBool = z.enum(['true', 'false']);

export const getCallQuery = z.strictObject({
  transcript: queryBool.optional().describe('true: include the transcript'),
  campaign_id: idSchema.optional().describe("the call's campaign, when known (saves a lookup)"),
});

export const reportQuery = z.strictObject({
  format: z.enum(['json', 'csv']).optional().describe('json (default) or csv; `Accept: text/csv` also selects CSV'),
});

export const idempotencyKeyHeader = z
  .string()
  .min(1, 'the key is empty')
  .max(MAX_KEY_CHARS)
  .regex(/^[\x21-\x7e]+$/, 'Idempotency-Key must be visible ASCII characters without spaces')
  .describe('same key and body: the same call (200); same key, another body: 409. Kept for 24 h');
