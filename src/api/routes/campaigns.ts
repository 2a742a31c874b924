/**
 * Campaign routes: pause, resume and cancel (the library functions behind `dialer pause|resume|cancel`) and the report
 * (`dialer report --json|--csv`). They sit under `/v1/campaigns/{id}/…` so that campaign objects (create, list, show,
 * update: `POST /v1/campaigns`, `GET|PATCH /v1/campaigns/{id}`) can be added beside them without moving anything.
 */
import { CampaignStateError, CampaignStore } from '../../campaigns/campaignStore.js';
import { knownCampaigns, nearbyCampaigns } from '../../cli/campaignNames.js';
import { cancelCalls } from '../../producer/cancelCalls.js';
import { pauseCampaign, resumeCampaign } from '../../producer/pauseCampaign.js';
import { campaignCsv, campaignReport } from '../../results/campaignReport.js';
import type { ApiContext } from '../context.js';
import { ApiProblem } from '../problem.js';
import { defineRoute, type Route } from '../route.js';
import { campaignCanceled, campaignParams, campaignPaused, campaignReportView, reportQuery } from '../schemas.js';
import { reportLineOf } from '../views.js';
import { openCallTimes } from '../../core/callTimes.js';

export const CSV_CONTENT_TYPE = 'text/csv; charset=utf-8';

/** True when a campaign has (or had) calls (it is in the campaign index), or is a defined campaign object. */
async function campaignKnown(ctx: ApiContext, campaignId: string): Promise<boolean> {
  if ((await ctx.redis.sismember(ctx.store.keys.campaignIndex(), campaignId)) === 1) return true;
  return (await new CampaignStore(ctx.redis, ctx.prefix, ctx.clock).get(campaignId)) !== undefined;
}

/** A 404 problem unless the campaign has calls, naming the campaigns close to a mistyped id (as the CLI does). */
async function requireCampaign(ctx: ApiContext, campaignId: string): Promise<void> {
  if (await campaignKnown(ctx, campaignId)) return;
  const near = nearbyCampaigns(campaignId, await knownCampaigns(ctx.redis, ctx.prefix));
  throw new ApiProblem('not-found', `no campaign ${campaignId} (it has no calls and is not defined)${near.length ? `; did you mean ${near.join(', ')}?` : ''}`);
}

/** CSV when asked by `?format=csv`, or by an Accept header that names text/csv and not JSON. */
function wantsCsv(format: 'json' | 'csv' | undefined, accept: string | undefined): boolean {
  if (format !== undefined) return format === 'csv';
  const types = (accept ?? '').toLowerCase();
  return types.includes('text/csv') && !types.includes('application/json');
}

/** The campaign routes, on `ctx`. */
export function campaignRoutes(ctx: ApiContext): Route[] {
  const pause = defineRoute(
    {
      method: 'POST',
      path: '/v1/campaigns/{id}/pause',
      operationId: 'pauseCampaign',
      summary: 'Pause a campaign',
      description: 'Calls not ringing yet wait (no attempt spent); calls in progress carry on. The campaign must have calls, as for `dialer pause`.',
      tag: 'campaigns',
      scope: 'admin',
      params: campaignParams,
      responses: { 200: { description: 'Paused', schema: campaignPaused }, 404: { description: 'No such campaign' } },
    },
    async ({ params }) => {
      await requireCampaign(ctx, params.id);
      const changed = await pauseCampaign(ctx.redis, ctx.prefix, params.id);
      ctx.logger.info({ campaignId: params.id, changed }, 'campaign paused through the API');
      return { status: 200, body: { campaign_id: params.id, paused: true, changed } };
    },
  );

  const resume = defineRoute(
    {
      method: 'POST',
      path: '/v1/campaigns/{id}/resume',
      operationId: 'resumeCampaign',
      summary: 'Resume a paused campaign',
      description: 'The calls the pause held back are dialed again at once.',
      tag: 'campaigns',
      scope: 'admin',
      params: campaignParams,
      responses: { 200: { description: 'Resumed', schema: campaignPaused }, 404: { description: 'No such campaign' } },
    },
    async ({ params }) => {
      await requireCampaign(ctx, params.id);
      const { wasPaused, released } = await resumeCampaign(ctx.redis, ctx.prefix, params.id);
      ctx.logger.info({ campaignId: params.id, changed: wasPaused, released }, 'campaign resumed through the API');
      return { status: 200, body: { campaign_id: params.id, paused: false, changed: wasPaused, released } };
    },
  );

  const cancel = defineRoute(
    {
      method: 'POST',
      path: '/v1/campaigns/{id}/cancel',
      operationId: 'cancelCampaign',
      summary: "Cancel a campaign's calls that have not started ringing",
      description:
        'They end as `canceled`; calls ringing or connected are counted as in flight and left alone. A defined campaign is marked canceled: calls enqueued to it later end `skipped`.',
      tag: 'campaigns',
      scope: 'admin',
      params: campaignParams,
      responses: {
        200: { description: 'Counts of what happened', schema: campaignCanceled },
        404: { description: 'No such campaign' },
        409: { description: 'An archived campaign' },
      },
    },
    async ({ params }) => {
      await requireCampaign(ctx, params.id);
      // a defined campaign is marked canceled too (calls enqueued later end skipped), as `dialer campaign cancel` does
      const campaigns = new CampaignStore(ctx.redis, ctx.prefix, ctx.clock);
      const summary = (await campaigns.get(params.id))
        ? await campaigns.cancel(params.id).catch((err: unknown) => {
            if (err instanceof CampaignStateError) throw new ApiProblem('campaign-state', err.message);
            throw err;
          })
        : await cancelCalls(ctx.redis, ctx.prefix, { campaignId: params.id }, ctx.clock);
      ctx.logger.info({ campaignId: params.id, canceled: summary.canceled.length, inFlight: summary.inFlight.length }, 'campaign canceled through the API');
      return {
        status: 200,
        body: { campaign_id: params.id, canceled: summary.canceled.length, in_flight: summary.inFlight.length, already_ended: summary.alreadyEnded.length },
      };
    },
  );

  const report = defineRoute(
    {
      method: 'GET',
      path: '/v1/campaigns/{id}/report',
      operationId: 'getCampaignReport',
      summary: 'Campaign report (JSON or CSV)',
      description:
        'JSON: totals by outcome, pending calls and every call on record in full, as `dialer report --json` (snake_case). ' +
        'CSV (`?format=csv` or `Accept: text/csv`): `dialer report --csv`, one row per call with its metadata columns and ' +
        'one column per survey question.',
      tag: 'campaigns',
      scope: 'read',
      params: campaignParams,
      query: reportQuery,
      responses: {
        200: {
          description: 'The report',
          schema: campaignReportView,
          content: { 'text/csv': { schema: { type: 'string', description: 'RFC 4180 CSV with a header line' } } },
        },
        404: { description: 'No such campaign' },
      },
    },
    async ({ params, query, header }) => {
      const campaignId = params.id;
      await requireCampaign(ctx, campaignId);
      const [counters, records, paused] = await Promise.all([ctx.store.counters(campaignId), ctx.store.list(campaignId), ctx.store.isPaused(campaignId)]);
      const [keys, times] = await Promise.all([
        ctx.store.idempotencyKeys(campaignId, records.map((record) => record.callId)),
        openCallTimes(ctx.redis, ctx.calls.forCampaign(campaignId), records),
      ]);
      // the CLI's own report: `report --csv` as is, `report --json` in snake_case (with each open call's due and expiry times)
      const r = campaignReport(campaignId, counters, records, keys, times);
      if (wantsCsv(query.format, header('accept'))) return { status: 200, body: campaignCsv(r), contentType: CSV_CONTENT_TYPE };
      return {
        status: 200,
        body: {
          campaign_id: r.campaign,
          total: r.total,
          pending: r.pending,
          paused,
          by_outcome: r.byOutcome,
          ...(r.pickUp ? { pick_up: r.pickUp } : {}),
          calls: r.calls.map(reportLineOf),
        },
      };
    },
  );

  return [pause, resume, cancel, report];
}
