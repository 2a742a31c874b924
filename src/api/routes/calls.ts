/**
 * Call routes: enqueue one call or a batch (through the same CallProducer as `dialer enqueue` and `import`, so the
 * same validation, idempotency keys and call records), read a call, cancel it.
 */
import type { FastifyRequest } from 'fastify';
import { InvalidInputError } from '../../core/errors.js';
import { DEFAULT_CAMPAIGN_ID } from '../../core/queues.js';
import { resolveSchedule, type ScheduleNames } from '../../core/time.js';
import { cancelCalls } from '../../producer/cancelCalls.js';
import { moveCallTo, type MoveTarget } from '../../schedules/moveCall.js';
import { keyedCallId } from '../../producer/callIds.js';
import type { CallRequest, EnqueueSummary } from '../../producer/enqueueCalls.js';
import type { ApiContext } from '../context.js';
import { IdempotencyKeys, idempotencyKeyOf, type IdempotencyClaim } from '../idempotency.js';
import { ApiProblem, fieldErrors, type FieldError } from '../problem.js';
import { defineRoute, type HeaderDoc, type Route, type RouteAnswer } from '../route.js';
import { callViewOf } from '../views.js';
import { callTimes } from '../../core/callTimes.js';
import {
  MAX_BATCH_CALLS,
  batchCallBody,
  batchEnvelope,
  batchResult,
  callCanceled,
  callCreated,
  callMoved,
  callParams,
  callView,
  createBatchBody,
  createCallBody,
  campaignParams,
  getCallQuery,
  idempotencyKeyHeader,
  moveCallBody,
  moveCallByKeyBody,
} from '../schemas.js';

/** One call's body: a phone number, a campaign id, metadata (≤ 16 KiB) and a few short fields. */
export const CALL_BODY_MAX_BYTES = 64 * 1024;
/**
 * A batch body: 10,000 rows of about 1.6 KB each (a number, a key and a dozen metadata fields fit in far less). A
 * parsed body takes several times its size in memory, so this bounds what one request can make the process hold.
 */
export const BATCH_BODY_MAX_BYTES = 16 * 1024 * 1024;
/**
 * The producer key a request with only an `Idempotency-Key` header gets, so a retry names the same call id. The
 * prefix keeps it apart from the keys callers put in bodies and CSV files.
 */
const HEADER_KEY_PREFIX = 'idempotency-key:';

const IDEMPOTENCY_POINTER = '#header/Idempotency-Key';
const EMPTY_KEY_HINT = 'send a key (a UUID, say) to make the request safe to retry, or leave the header out';

const IDEMPOTENCY_HEADER: HeaderDoc = {
  name: 'Idempotency-Key',
  schema: idempotencyKeyHeader,
  description: 'Same key and same body: the same answer and call (200 for a retry). Same key, another body: 409. Kept 24 h. An empty key (or `""`) is a 400.',
};

/** The fields a single call and a batch row share, as the producer takes them. */
interface CallFields {
  phone_number: string;
  metadata?: CallRequest['metadata'];
  key?: string;
  at?: string;
  expires_at?: string;
}

interface CallDefaults {
  agent_profile?: string;
  priority?: number;
  call_window?: { from: string; to: string; time_zone: string; days?: number[] };
}

/** How the schedule fields are named in messages (resolveSchedule's names): the body's own field names. */
/**
 * Whether the request's token may read stored calls (the `read` scope GET /v1/calls/{id} needs). Without it, a key
 * conflict says what differs but not the stored call's id, number or metadata: probing keys must not disclose them.
 */
function mayReadCalls(request: FastifyRequest): boolean {
  return request.apiToken?.scopes.has('read') ?? false;
}

const SCHEDULE_FIELDS: ScheduleNames = { at: 'at', delay: 'delay', expiresAt: 'expires_at' };

/**
 * A request for the producer, with the schedule checks `dialer enqueue` and `import` make (core/time.ts
 * resolveSchedule: a start at most 5 minutes past, which means now, and at most 90 days ahead; an expiry in the
 * future, after the start, within the same bound); `pointer` is where the fields sit in the body.
 */
function toCallRequest(
  fields: CallFields,
  defaults: CallDefaults,
  campaignId: string,
  now: number,
  timeZone: string,
  pointer: string,
  keyed: { key: string | undefined; dedupeByNumber: boolean },
): { request: CallRequest } | { errors: FieldError[] } {
  let schedule: { notBefore?: number; expiresAt?: number };
  try {
    schedule = resolveSchedule({ at: fields.at, expiresAt: fields.expires_at }, now, timeZone, SCHEDULE_FIELDS);
  } catch (err) {
    if (!(err instanceof InvalidInputError)) throw err;
    const field = err.message.startsWith(SCHEDULE_FIELDS.expiresAt) ? SCHEDULE_FIELDS.expiresAt : SCHEDULE_FIELDS.at;
    return { errors: [{ pointer: `${pointer}/${field}`, detail: err.message }] };
  }
  const window = defaults.call_window;
  return {
    request: {
      phoneNumber: fields.phone_number,
      campaignId,
      metadata: fields.metadata,
      key: keyed.key,
      dedupeByNumber: keyed.dedupeByNumber || undefined,
      notBefore: schedule.notBefore,
      expiresAt: schedule.expiresAt,
      agentProfile: defaults.agent_profile,
      priority: defaults.priority,
      callWindow: window && { from: window.from, to: window.to, timeZone: window.time_zone, days: window.days },
    },
  };
}

/** Claims the request's Idempotency-Key, if it has one; a 409 problem when the key was used for another request. */
async function claimIdempotencyKey(
  ctx: ApiContext,
  header: string | undefined,
  route: string,
  request: unknown,
): Promise<{ key: string; fingerprint: string; claim: IdempotencyClaim } | undefined> {
  if (header === undefined) return undefined;
  // an empty header (bare, or the quoted form's "") names no key: refused, never read as no header or as the key ''
  if (idempotencyKeyOf(header.trim()) === '') {
    throw new ApiProblem('invalid-request', `Idempotency-Key is empty: ${EMPTY_KEY_HINT}`, { errors: [{ pointer: IDEMPOTENCY_POINTER, detail: `the key is empty: ${EMPTY_KEY_HINT}` }] });
  }
  const parsed = idempotencyKeyHeader.safeParse(header);
  if (!parsed.success) {
    const errors = fieldErrors(parsed.error.issues, 'header').map((e) => ({ ...e, pointer: IDEMPOTENCY_POINTER }));
    throw new ApiProblem('invalid-request', `Idempotency-Key: ${errors[0]?.detail ?? 'invalid'}`, { errors });
  }
  const key = idempotencyKeyOf(parsed.data);
  const fingerprint = IdempotencyKeys.fingerprint(route, request);
  const claim = await ctx.idempotency.claim(key, fingerprint);
  if (claim.status === 'conflict') {
    throw new ApiProblem(
      'idempotency-key-reused',
      'this Idempotency-Key was used within the last 24 h for a request with another body or campaign: use a new key for a different request',
    );
  }
  return { key, fingerprint, claim };
}

/** Finds a call's campaign (given, or looked up); a 404 problem when no campaign holds the call. */
async function campaignOfCall(ctx: ApiContext, callId: string, given: string | undefined): Promise<string> {
  const campaignId = given ?? (await ctx.callIndex.campaignOf(callId));
  if (campaignId === undefined || !(await ctx.store.get(campaignId, callId))) {
    throw new ApiProblem('not-found', `no call ${callId}${given === undefined ? '' : ` in campaign ${given}`}`);
  }
  return campaignId;
}

/** What both move routes answer: the move through the CLI's own moveCallTo, its refusals as problems. */
async function moveAnswer(ctx: ApiContext, target: MoveTarget, at: string): Promise<RouteAnswer> {
  let result;
  try {
    result = await moveCallTo(ctx.redis, ctx.prefix, ctx.clock, target, { at }, ctx.timeZone, SCHEDULE_FIELDS);
  } catch (err) {
    if (err instanceof InvalidInputError) throw new ApiProblem('invalid-move', err.message, { errors: [{ pointer: '/at', detail: err.message }] });
    throw err;
  }
  switch (result.status) {
    case 'moved':
      ctx.logger.info({ callId: result.callId, campaignId: result.campaignId, at: result.at }, 'call moved through the API');
      return { status: 200, body: { call_id: result.callId, campaign_id: result.campaignId, at: new Date(result.at).toISOString() } };
    case 'not_found':
      throw new ApiProblem('not-found', result.key === undefined ? `no call ${result.callId}` : `no call with key ${JSON.stringify(result.key)} in campaign ${result.campaignId}`);
    case 'not_movable':
      throw new ApiProblem('call-not-movable', `call ${result.callId} cannot be moved: ${result.why}`, { state: result.state });
  }
}

/** The call routes, on `ctx`. */
export function callRoutes(ctx: ApiContext): Route[] {
  const createCall = defineRoute(
    {
      method: 'POST',
      path: '/v1/calls',
      operationId: 'createCall',
      summary: 'Enqueue one call',
      description:
        'Validates the number and metadata as `dialer enqueue` does, creates the call record and the job on `calls`. ' +
        'A `key` names the call within its campaign: the same key gets the same call (200), a different number or ' +
        'metadata under it is refused (409). An `Idempotency-Key` header makes any request safe to retry.',
      tag: 'calls',
      scope: 'enqueue',
      body: { schema: createCallBody, check: createCallBody, description: 'the call', maxBytes: CALL_BODY_MAX_BYTES },
      headers: [IDEMPOTENCY_HEADER],
      responses: {
        201: {
          description: 'Enqueued',
          schema: callCreated,
          headers: { location: { description: '/v1/calls/{call_id}', schema: { type: 'string' } } },
        },
        200: { description: 'The same request was made before: its call', schema: callCreated },
        409: { description: 'The key or Idempotency-Key already names a call made from another request' },
        422: { description: 'The number, metadata, profile or times cannot make a call, or its campaign has ended (detail says why)' },
      },
    },
    async ({ body, header, request }) => {
      const campaignId = body.campaign_id ?? DEFAULT_CAMPAIGN_ID;
      const idempotency = await claimIdempotencyKey(ctx, header('idempotency-key'), 'POST /v1/calls', { ...body, campaign_id: campaignId });
      const producerKey = body.key ?? (idempotency ? `${HEADER_KEY_PREFIX}${idempotency.key}` : undefined);
      const release = async () => {
        if (idempotency) await ctx.idempotency.release(idempotency.key, idempotency.fingerprint);
      };
      const prepared = toCallRequest(body, body, campaignId, ctx.clock.now(), ctx.timeZone, '', { key: producerKey, dedupeByNumber: false });
      if ('errors' in prepared) {
        await release();
        throw new ApiProblem('invalid-call', prepared.errors.map((e) => e.detail).join('; '), { errors: prepared.errors });
      }
      const summary = await ctx.producer.enqueueCalls([prepared.request]);
      const rejected = summary.rejected[0];
      if (rejected) {
        await release();
        // the key already names a call: this request differs from the one that made it (else it would be a duplicate)
        const keyedId = producerKey === undefined ? undefined : keyedCallId(campaignId, producerKey);
        if (keyedId !== undefined && (await ctx.store.get(campaignId, keyedId))) {
          // the stored call's id, number and metadata only for a token that may read calls (GET /v1/calls/{id})
          if (rejected.keyConflict && !mayReadCalls(request)) throw new ApiProblem('key-conflict', rejected.keyConflict.withoutStored);
          throw new ApiProblem('key-conflict', rejected.reason, { call_id: keyedId });
        }
        throw new ApiProblem('invalid-call', rejected.reason);
      }
      const created = summary.enqueued[0];
      const entry = created ?? summary.duplicates[0];
      if (!entry) throw new Error('enqueue answered neither enqueued, duplicate nor rejected for one call');
      await ctx.callIndex.remember(campaignId, [entry.callId]);
      ctx.logger.debug({ callId: entry.callId, campaignId, duplicate: !created }, created ? 'call enqueued' : 'call already enqueued');
      return {
        status: created ? 201 : 200,
        body: { call_id: entry.callId, campaign_id: campaignId },
        headers: { location: `/v1/calls/${entry.callId}` },
      };
    },
  );

  const createBatch = defineRoute(
    {
      method: 'POST',
      path: '/v1/campaigns/{id}/calls',
      operationId: 'createCallBatch',
      summary: `Enqueue up to ${MAX_BATCH_CALLS.toLocaleString('en')} calls for a campaign`,
      description:
        'The rows go through the same enqueue path as `dialer import` (chunks of 1,000 to addBulk): a row with a `key` ' +
        'is keyed by it, a row without one by its number, so a number is called once per campaign and a retried batch ' +
        'enqueues nothing twice. Each row is checked on its own: bad rows are answered in `results` with their errors ' +
        'and the others are enqueued.',
      tag: 'calls',
      scope: 'enqueue',
      params: campaignParams,
      body: { schema: createBatchBody, check: batchEnvelope, description: 'the calls', maxBytes: BATCH_BODY_MAX_BYTES },
      headers: [IDEMPOTENCY_HEADER],
      responses: {
        200: { description: 'Every row handled: enqueued, duplicate or rejected (see results)', schema: batchResult },
        409: { description: 'The Idempotency-Key was used for another request' },
      },
    },
    async ({ params, body, header, request }) => {
      const campaignId = params.id;
      await claimIdempotencyKey(ctx, header('idempotency-key'), 'POST /v1/campaigns/{id}/calls', { campaign_id: campaignId, ...body });
      const now = ctx.clock.now();
      const rowErrors = new Map<number, FieldError[]>();
      const requests: CallRequest[] = [];
      const rowOf: number[] = [];
      body.calls.forEach((raw, index) => {
        const pointer = `/calls/${index}`;
        const row = batchCallBody.safeParse(raw);
        if (!row.success) {
          rowErrors.set(index, fieldErrors(row.error.issues, 'body').map((e) => ({ ...e, pointer: `${pointer}${e.pointer}` })));
          return;
        }
        const prepared = toCallRequest(row.data, body, campaignId, now, ctx.timeZone, pointer, { key: row.data.key, dedupeByNumber: row.data.key === undefined });
        if ('errors' in prepared) {
          rowErrors.set(index, prepared.errors);
          return;
        }
        rowOf.push(index);
        requests.push(prepared.request);
      });
      const summary: EnqueueSummary = await ctx.producer.enqueueCalls(requests);
      const results: { index: number; status: 'created' | 'duplicate' | 'rejected'; call_id?: string; errors?: FieldError[] }[] = [];
      const row = (i: number) => rowOf[i] ?? -1;
      for (const e of summary.enqueued) results.push({ index: row(e.index), status: 'created', call_id: e.callId });
      for (const e of summary.duplicates) results.push({ index: row(e.index), status: 'duplicate', call_id: e.callId });
      const mayRead = mayReadCalls(request);
      for (const e of summary.rejected) {
        const detail = e.keyConflict && !mayRead ? e.keyConflict.withoutStored : e.reason;
        results.push({ index: row(e.index), status: 'rejected', errors: [{ pointer: `/calls/${row(e.index)}`, detail }] });
      }
      for (const [index, errors] of rowErrors) results.push({ index, status: 'rejected', errors });
      results.sort((a, b) => a.index - b.index);
      const callIds = [...summary.enqueued, ...summary.duplicates].map((e) => e.callId);
      await ctx.callIndex.remember(campaignId, callIds);
      const rejected = summary.rejected.length + rowErrors.size;
      ctx.logger.info({ campaignId, rows: body.calls.length, enqueued: summary.enqueued.length, duplicates: summary.duplicates.length, rejected }, 'batch enqueued');
      return {
        status: 200,
        body: {
          campaign_id: campaignId,
          rows: body.calls.length,
          enqueued: summary.enqueued.length,
          duplicates: summary.duplicates.length,
          rejected,
          results,
        },
      };
    },
  );

  const getCall = defineRoute(
    {
      method: 'GET',
      path: '/v1/calls/{id}',
      operationId: 'getCall',
      summary: "A call's state, attempts and outcome",
      tag: 'calls',
      scope: 'read',
      params: callParams,
      query: getCallQuery,
      responses: {
        200: { description: "The call's record", schema: callView },
        404: { description: 'No such call' },
      },
    },
    async ({ params, query }) => {
      const campaignId = await campaignOfCall(ctx, params.id, query.campaign_id);
      const [record, keys] = await Promise.all([ctx.store.get(campaignId, params.id), ctx.store.idempotencyKeys(campaignId, [params.id])]);
      if (!record) throw new ApiProblem('not-found', `no call ${params.id}`);
      const times = record.state === 'terminal' ? {} : await callTimes(ctx.redis, ctx.calls.forCampaign(campaignId), params.id);
      return { status: 200, body: callViewOf(record, keys.get(params.id), query.transcript === 'true', times) };
    },
  );

  const cancelCall = defineRoute(
    {
      method: 'DELETE',
      path: '/v1/calls/{id}',
      operationId: 'cancelCall',
      summary: 'Cancel a call that has not started ringing',
      description:
        'A call still queued or waiting for a retry ends as `canceled` (as `dialer cancel` does). A call ringing or ' +
        'connected is not ended now: the hang-up is the agent’s (409, `cancel_requested: true`); it is not tried again ' +
        'either, and ends `canceled` if this attempt ends unanswered. Canceling a canceled call answers 200 again.',
      tag: 'calls',
      scope: 'admin',
      params: callParams,
      responses: {
        200: { description: 'The call is canceled', schema: callCanceled },
        404: { description: 'No such call' },
        409: { description: 'The call is ringing or connected (`cancel_requested: true`: no further attempt), or already ended otherwise (`state` says which)' },
      },
    },
    async ({ params }) => {
      const callId = params.id;
      const campaignId = await campaignOfCall(ctx, callId, undefined);
      const summary = await cancelCalls(ctx.redis, ctx.prefix, { campaignId, callIds: [callId] }, ctx.clock);
      const canceled = { status: 200, body: { call_id: callId, campaign_id: campaignId, state: 'terminal', outcome: 'canceled' } };
      if (summary.canceled.includes(callId)) {
        ctx.logger.info({ callId, campaignId }, 'call canceled through the API');
        return canceled;
      }
      const record = await ctx.store.get(campaignId, callId);
      if (!record) throw new ApiProblem('not-found', `no call ${callId}`);
      if (record.state === 'terminal' && record.outcome === 'canceled') return canceled;
      const state = record.state === 'terminal' ? (record.outcome ?? 'terminal') : record.state;
      if (summary.inFlight.includes(callId)) {
        // noted on the record (cancelCalls): no further attempt, `canceled` if this one ends unanswered
        ctx.logger.info({ callId, campaignId, state }, 'cancel of a call in flight noted through the API');
        const detail = `call ${callId} cannot be canceled now: it is ${state.replace('_', ' ')} and the hang-up is the agent's; it will not be tried again, and ends canceled if this attempt ends unanswered`;
        throw new ApiProblem('call-not-cancelable', detail, { state, cancel_requested: true });
      }
      const why = record.state === 'terminal' ? `it already ended as ${state}` : `it is ${state.replace('_', ' ')}: the hang-up is the agent's`;
      throw new ApiProblem('call-not-cancelable', `call ${callId} cannot be canceled: ${why}`, { state });
    },
  );

  const moveCallRoute = defineRoute(
    {
      method: 'POST',
      path: '/v1/calls/{id}/move',
      operationId: 'moveCall',
      summary: 'Move a scheduled call to another time',
      description:
        'A call waiting for its time (`at`, or a retry) comes up at the new one instead (as `dialer move` does). A call ' +
        'ringing, connected, ended, or already due (waiting for a dial slot) is not moved (409, `state` says which).',
      tag: 'calls',
      scope: 'admin',
      params: callParams,
      body: { schema: moveCallBody, check: moveCallBody, description: 'the new time', maxBytes: CALL_BODY_MAX_BYTES },
      responses: {
        200: { description: 'The call comes up at the new time', schema: callMoved },
        404: { description: 'No such call' },
        409: { description: 'The call is ringing, connected, ended or due now' },
        422: { description: 'The new time is outside the bounds (more than 90 days ahead, past its expiry, more than 5 minutes past)' },
      },
    },
    async ({ params, body }) => moveAnswer(ctx, { callId: params.id, campaignId: await campaignOfCall(ctx, params.id, body.campaign_id) }, body.at),
  );

  const moveCallByKeyRoute = defineRoute(
    {
      method: 'POST',
      path: '/v1/campaigns/{id}/calls/move',
      operationId: 'moveCallByKey',
      summary: 'Move a scheduled call, named by its key, to another time',
      description:
        'As `dialer move --key KEY --campaign ID`: the call the campaign holds under `key` (the key it was enqueued ' +
        'with) is moved as `POST /v1/calls/{id}/move` moves a call. A call enqueued with only an `Idempotency-Key` ' +
        'header has no key of its own: move it by the id its request answered.',
      tag: 'calls',
      scope: 'admin',
      params: campaignParams,
      body: { schema: moveCallByKeyBody, check: moveCallByKeyBody, description: 'the key and the new time', maxBytes: CALL_BODY_MAX_BYTES },
      responses: {
        200: { description: 'The call comes up at the new time', schema: callMoved },
        404: { description: 'The campaign holds no call under this key' },
        409: { description: 'The call is ringing, connected, ended or due now' },
        422: { description: 'The new time is outside the bounds (more than 90 days ahead, past its expiry, more than 5 minutes past)' },
      },
    },
    async ({ params, body }) => moveAnswer(ctx, { campaignId: params.id, key: body.key }, body.at),
  );

  return [createCall, createBatch, getCall, cancelCall, moveCallRoute, moveCallByKeyRoute];
}
