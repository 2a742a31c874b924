/** Recurring calls through the API (src/schedules): `POST /v1/schedules`, `GET /v1/schedules`, `DELETE /v1/schedules/{id}`. */
import { z } from 'zod';
import { InvalidInputError } from '../../core/errors.js';
import { REGION_SOURCES } from '../../core/phone.js';
import { idSchema } from '../../core/queues.js';
import { CallSchedules, scheduleSchema } from '../../schedules/callSchedules.js';
import type { ApiContext } from '../context.js';
import { ApiProblem } from '../problem.js';
import { defineRoute, type Route } from '../route.js';
import { COMPONENT_IDS } from '../schemas.js';

/** A schedule of up to 1,000 calls stays well inside this. */
export const SCHEDULE_BODY_MAX_BYTES = 1024 * 1024;

const scheduleView = scheduleSchema.extend({ next_at: z.number().int().optional().describe('next firing, epoch ms') }).meta({ id: 'Schedule' });
COMPONENT_IDS.add('Schedule'); // a named component of the document (openapi.ts)
const scheduleList = z.object({ schedules: z.array(scheduleView) });
const scheduleRemoved = z.object({ schedule_id: z.string(), removed: z.literal(true) });
const scheduleParams = z.strictObject({ id: idSchema.describe('schedule id') });

export function scheduleRoutes(ctx: ApiContext): Route[] {
  const schedules = new CallSchedules(ctx.redis, ctx.prefix, { profiles: ctx.profiles, defaultRegion: ctx.defaultRegion, regionSources: REGION_SOURCES.api });
  const create = defineRoute(
    {
      method: 'POST',
      path: '/v1/schedules',
      operationId: 'upsertSchedule',
      summary: 'Create or replace a recurring schedule',
      description: 'Each firing of the cron pattern (read in time_zone) enqueues its calls once, keyed by the firing time. Firings are processed by every `dialer consumer` (or `dialer schedule run`).',
      tag: 'schedules',
      scope: 'admin',
      body: { schema: scheduleSchema, check: scheduleSchema, description: 'the schedule', maxBytes: SCHEDULE_BODY_MAX_BYTES },
      responses: { 200: { description: 'The schedule and its next firing', schema: scheduleView } },
    },
    async ({ body }) => {
      try {
        return { status: 200, body: await schedules.upsert(body) };
      } catch (err) {
        if (err instanceof InvalidInputError) throw new ApiProblem('invalid-request', err.message);
        throw err;
      }
    },
  );
  const list = defineRoute(
    {
      method: 'GET',
      path: '/v1/schedules',
      operationId: 'listSchedules',
      summary: 'List schedules',
      tag: 'schedules',
      scope: 'read',
      responses: { 200: { description: 'Every schedule by id', schema: scheduleList } },
    },
    async () => ({ status: 200, body: { schedules: await schedules.list() } }),
  );
  const remove = defineRoute(
    {
      method: 'DELETE',
      path: '/v1/schedules/{id}',
      operationId: 'removeSchedule',
      summary: 'Remove a schedule (calls already enqueued stay)',
      tag: 'schedules',
      scope: 'admin',
      params: scheduleParams,
      responses: { 200: { description: 'Removed', schema: scheduleRemoved }, 404: { description: 'No such schedule' } },
    },
    async ({ params }) => {
      if (!(await schedules.remove(params.id))) throw new ApiProblem('not-found', `no schedule ${params.id}`);
      return { status: 200, body: { schedule_id: params.id, removed: true } };
    },
  );
  return [create, list, remove];
}
