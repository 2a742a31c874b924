/**
 * Campaign objects through the API (src/campaigns): `POST /v1/campaigns`, `GET /v1/campaigns`,
 * `GET|PATCH /v1/campaigns/{id}`, `POST /v1/campaigns/{id}/archive`. Bodies are the campaign's snake_case settings, as
 * `dialer campaign create --settings` takes them; pause, resume and cancel stay in campaigns.ts.
 */
import { z } from 'zod';
import { campaignCreateSchema, campaignSettingsSchema, campaignUpdateSchema } from '../../campaigns/campaignSchema.js';
import {
  CampaignExistsError,
  CampaignNotFoundError,
  CampaignStateError,
  CampaignStore,
  InvalidCampaignError,
  withSecretHidden,
  type CampaignView,
} from '../../campaigns/campaignStore.js';
import type { ApiContext } from '../context.js';
import { ApiProblem } from '../problem.js';
import { defineRoute, type Route } from '../route.js';
import { campaignParams, COMPONENT_IDS } from '../schemas.js';

/** Largest campaign body (its settings are a few hundred bytes). */
export const CAMPAIGN_BODY_MAX_BYTES = 16 * 1024;

const campaignView = campaignSettingsSchema
  .extend({
    id: z.string(),
    state: z.enum(['active', 'paused', 'canceled', 'archived']),
    status: z.enum(['active', 'paused', 'canceled', 'archived', 'scheduled', 'expired']).describe('state now: scheduled before starts_at, expired after ends_at'),
    paused: z.boolean(),
    created_at: z.number().int().describe('epoch ms'),
    updated_at: z.number().int().describe('epoch ms'),
    ramp_started_at: z.number().int().describe('epoch ms the ramp runs from'),
  })
  .meta({ id: 'Campaign' });
COMPONENT_IDS.add('Campaign'); // a named component of the document (openapi.ts), as schemas.ts names its own
const campaignList = z.object({ campaigns: z.array(campaignView) });
const listQuery = z.strictObject({ archived: z.enum(['true', 'false']).optional().describe('true: include archived campaigns') });

/** The campaign's errors as problems (each failure mapped here, once). */
async function answer(body: () => Promise<CampaignView | CampaignView[]>, status = 200): Promise<{ status: number; body: unknown }> {
  try {
    const result = await body();
    return { status, body: Array.isArray(result) ? { campaigns: result.map(hideSecret) } : hideSecret(result) };
  } catch (err) {
    if (err instanceof InvalidCampaignError) {
      throw new ApiProblem('invalid-request', err.problems.join('; '), {
        errors: err.problems.map((p) => {
          const [field = '', ...rest] = p.split(': ');
          return { pointer: `/${field.replace(/\./g, '/')}`, detail: rest.join(': ') };
        }),
      });
    }
    if (err instanceof CampaignNotFoundError) throw new ApiProblem('not-found', err.message);
    if (err instanceof CampaignExistsError) throw new ApiProblem('campaign-exists', err.message);
    if (err instanceof CampaignStateError) throw new ApiProblem('campaign-state', err.message);
    throw err;
  }
}

/** A webhook secret is written, never read back. */
const hideSecret = withSecretHidden;

export function campaignObjectRoutes(ctx: ApiContext): Route[] {
  const store = new CampaignStore(ctx.redis, ctx.prefix, ctx.clock, ctx.profiles);
  const create = defineRoute(
    {
      method: 'POST',
      path: '/v1/campaigns',
      operationId: 'createCampaign',
      summary: 'Create a campaign',
      description: 'Settings are optional: absent ones follow the global settings (DIAL_*). Calls enqueued to an id never created run with the global settings.',
      tag: 'campaigns',
      scope: 'admin',
      body: { schema: campaignCreateSchema, check: z.record(z.string(), z.unknown()), description: 'the campaign', maxBytes: CAMPAIGN_BODY_MAX_BYTES },
      responses: { 201: { description: 'Created', schema: campaignView }, 409: { description: 'The id exists already' } },
    },
    async ({ body }) => answer(() => store.create(body), 201),
  );
  const list = defineRoute(
    {
      method: 'GET',
      path: '/v1/campaigns',
      operationId: 'listCampaigns',
      summary: 'List campaigns',
      tag: 'campaigns',
      scope: 'read',
      query: listQuery,
      responses: { 200: { description: 'Defined campaigns by id', schema: campaignList } },
    },
    async ({ query }) => answer(() => store.list({ archived: query.archived === 'true' })),
  );
  const show = defineRoute(
    {
      method: 'GET',
      path: '/v1/campaigns/{id}',
      operationId: 'getCampaign',
      summary: 'Show a campaign',
      tag: 'campaigns',
      scope: 'read',
      params: campaignParams,
      responses: { 200: { description: 'The campaign', schema: campaignView }, 404: { description: 'No such campaign' } },
    },
    async ({ params }) => answer(() => store.show(params.id)),
  );
  const update = defineRoute(
    {
      method: 'PATCH',
      path: '/v1/campaigns/{id}',
      operationId: 'updateCampaign',
      summary: 'Change a campaign while it runs',
      description: 'Given settings replace the stored ones; `unset` removes settings. Consumers follow from the next call they take (a lowered cap within a second).',
      tag: 'campaigns',
      scope: 'admin',
      params: campaignParams,
      body: { schema: campaignUpdateSchema, check: z.record(z.string(), z.unknown()), description: 'settings to change', maxBytes: CAMPAIGN_BODY_MAX_BYTES },
      responses: { 200: { description: 'The campaign now', schema: campaignView }, 404: { description: 'No such campaign' }, 409: { description: 'Archived: read-only' } },
    },
    async ({ params, body }) => answer(() => store.update(params.id, body)),
  );
  const archive = defineRoute(
    {
      method: 'POST',
      path: '/v1/campaigns/{id}/archive',
      operationId: 'archiveCampaign',
      summary: 'Archive a campaign that is over',
      description: 'Hidden from the list and read-only; its report stays. Refused (409) while calls of it are not over, unless canceled or expired.',
      tag: 'campaigns',
      scope: 'admin',
      params: campaignParams,
      responses: { 200: { description: 'Archived', schema: campaignView }, 404: { description: 'No such campaign' }, 409: { description: 'Still running' } },
    },
    async ({ params }) => answer(() => store.archive(params.id)),
  );
  return [create, list, show, update, archive];
}
