/**
 * A campaign as an object (issue 12 §2): its settings, validated with zod at every edge (CLI, API, library), stored as
 * one JSON document in Redis (campaignStore.ts). Field names are snake_case everywhere (CLI `--json`, API, Redis), as
 * jobs pushed onto `calls` and the API's bodies are.
 *
 * Calls to a campaign id that has no stored document keep working: such a campaign is *implicit*, with the global
 * settings (DIAL_*), no caps of its own, and `active` (see README, Campaigns). `campaign create` later gives it settings.
 */
import { z } from 'zod';
import { isTimeZone, parseCallWindow, type CallWindow } from '../core/callWindow.js';
import { isRegion } from '../core/phone.js';
import { idSchema } from '../core/queues.js';
import { MAX_SCHEDULE_AHEAD_MS, SECOND } from '../core/time.js';
import { errorMessage } from '../core/errors.js';

/** More attempts per series than this is a typo (and a nuisance to the callee). */
export const MAX_CAMPAIGN_ATTEMPTS = 20;
/** A ramp longer than a day is a typo. */
export const MAX_RAMP_S = 24 * 60 * 60;
/** The longest retry delay a campaign may set (a week): longer belongs in a recycle rule. */
export const MAX_RETRY_DELAY_S = 7 * 24 * 60 * 60;
/** Longest name shown in lists. */
export const MAX_CAMPAIGN_NAME = 200;

const retryable = z.enum(['busy', 'no_answer', 'failed']);
const isoDate = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date and time with its offset, e.g. 2026-03-01T09:00:00Z' });

/** Calling hours of the campaign's calls that carry none of their own (as DIAL_CALL_WINDOW / DIAL_CALL_DAYS). */
export const campaignWindowSchema = z
  .object({
    hours: z.string().describe('local hours, e.g. 09:00-20:00'),
    days: z.string().optional().describe('weekdays, e.g. mon-fri (every day when absent)'),
    time_zone: z.string().refine(isTimeZone, 'must be an IANA time zone such as America/New_York').optional(),
  })
  .strict()
  .superRefine((w, ctx) => {
    try {
      parseCallWindow(w.hours, w.time_zone ?? 'UTC', w.days);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: errorMessage(err), path: [/weekdays/.test(errorMessage(err)) ? 'days' : 'hours'] });
    }
  });

/** The settings a campaign may have; every one is optional (absent: the global setting applies). */
export const campaignSettingsSchema = z
  .object({
    name: z.string().min(1).max(MAX_CAMPAIGN_NAME).optional(),
    agent_profile: z.string().min(1).optional().describe("the agent profile of calls that name none (AGENT_PROFILES_FILE)"),
    trunk_id: z.string().min(1).optional().describe('outbound SIP trunk (and so caller id) of its calls; SIP_OUTBOUND_TRUNK_ID when absent'),
    cps: z.number().positive('must be > 0').optional().describe('call starts per second of this campaign, inside DIAL_CPS'),
    max_active_calls: z.number().int().positive('must be > 0').optional().describe('calls in progress of this campaign, inside DIAL_MAX_ACTIVE_CALLS'),
    ramp: z
      .object({
        from_cps: z.number().positive('must be > 0'),
        over_s: z.number().int().positive('must be > 0').max(MAX_RAMP_S, `must be at most ${MAX_RAMP_S} s`),
      })
      .strict()
      .optional()
      .describe('starts at from_cps and rises evenly to cps over over_s seconds from the start (and from each resume)'),
    max_attempts: z.number().int().min(1).max(MAX_CAMPAIGN_ATTEMPTS).optional().describe('attempts per call; at most the job\'s own'),
    retry_delays_s: z
      .object({ busy: z.number().nonnegative().max(MAX_RETRY_DELAY_S), no_answer: z.number().nonnegative().max(MAX_RETRY_DELAY_S), failed: z.number().nonnegative().max(MAX_RETRY_DELAY_S) })
      .partial()
      .strict()
      .optional()
      .describe('first retry delay per outcome (doubling per attempt, as DIAL_RETRY_DELAY_*_S)'),
    recycle: z
      .object({
        outcomes: z.array(retryable).min(1),
        after_s: z.number().int().positive().max(MAX_SCHEDULE_AHEAD_MS / SECOND, 'must be at most 90 days (7776000 s)'),
        max_series: z.number().int().min(1).max(MAX_CAMPAIGN_ATTEMPTS),
      })
      .strict()
      .optional()
      .describe('a call ended with one of these outcomes is called again after_s later as a new call, up to max_series series in all (the first included)'),
    window: campaignWindowSchema.optional(),
    default_region: z.string().refine(isRegion, 'must be a two-letter country code such as US, GB or DE').optional(),
    starts_at: isoDate.optional().describe('no call of the campaign rings before this'),
    ends_at: isoDate.optional().describe('calls not placed by then end as `expired`'),
    webhook: z.object({ url: z.url('must be a URL like https://example.com/hooks/calls'), secret: z.string().min(1).optional() }).strict().optional().describe("where its calls' outcomes are POSTed (signed with the secret when set), instead of RESULTS_WEBHOOK_URL"),
  })
  .strict();
export type CampaignSettings = z.infer<typeof campaignSettingsSchema>;

/** `campaign create`: an id and its settings; dates in order, a ramp only with a cps to ramp to. */
export const campaignCreateSchema = campaignSettingsSchema.extend({ id: idSchema }).strict().superRefine(checkConsistent);
/** Names of the settings, for `unset`. */
export const CAMPAIGN_SETTING_NAMES = Object.keys(campaignSettingsSchema.shape) as [keyof CampaignSettings, ...(keyof CampaignSettings)[]];
/** `campaign update`: settings to change, and `unset`: settings to remove (back to the global setting). */
export const campaignUpdateSchema = campaignSettingsSchema.extend({ unset: z.array(z.enum(CAMPAIGN_SETTING_NAMES)).optional() }).strict();
export type CampaignUpdate = z.infer<typeof campaignUpdateSchema>;

/** Lifecycle states an operator sets; `scheduled` and `expired` are derived from the dates (campaignStatus). */
export const CAMPAIGN_STATES = ['active', 'paused', 'canceled', 'archived'] as const;
export type CampaignState = (typeof CAMPAIGN_STATES)[number];
export type CampaignStatus = CampaignState | 'scheduled' | 'expired';

/** The stored document. */
export interface Campaign extends CampaignSettings {
  id: string;
  state: CampaignState;
  /** Epoch ms. */
  created_at: number;
  updated_at: number;
  /** When the ramp runs from (epoch ms): the start date, or creation, or the last resume. */
  ramp_started_at: number;
}

export function checkConsistent(s: CampaignSettings, ctx: z.RefinementCtx): void {
  if (s.starts_at && s.ends_at && Date.parse(s.ends_at) <= Date.parse(s.starts_at)) {
    ctx.addIssue({ code: 'custom', message: 'must be after starts_at', path: ['ends_at'] });
  }
  if (s.ramp && s.cps === undefined) ctx.addIssue({ code: 'custom', message: 'needs cps (the rate the ramp rises to)', path: ['ramp'] });
  if (s.ramp && s.cps !== undefined && s.ramp.from_cps > s.cps) ctx.addIssue({ code: 'custom', message: 'from_cps must not exceed cps', path: ['ramp', 'from_cps'] });
}

/** Readable lines for a zod error: `field.path: message`. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(campaign)'}: ${i.message}`);
}

/** What a campaign is now: its operator state, or `scheduled` before its start and `expired` after its end. */
export function campaignStatus(campaign: Campaign, now: number): CampaignStatus {
  if (campaign.state === 'canceled' || campaign.state === 'archived') return campaign.state;
  if (campaign.ends_at && now >= Date.parse(campaign.ends_at)) return 'expired';
  if (campaign.starts_at && now < Date.parse(campaign.starts_at)) return 'scheduled';
  return campaign.state;
}

/**
 * The campaign's call starts per second at `now`: its cps, or on its ramp (from_cps rising evenly to cps over over_s
 * from ramp_started_at). Undefined: no rate of its own.
 */
export function effectiveCps(campaign: Campaign, now: number): number | undefined {
  if (campaign.cps === undefined) return undefined;
  if (!campaign.ramp) return campaign.cps;
  const elapsed = Math.max(0, now - campaign.ramp_started_at) / (campaign.ramp.over_s * SECOND);
  if (elapsed >= 1) return campaign.cps;
  return campaign.ramp.from_cps + (campaign.cps - campaign.ramp.from_cps) * elapsed;
}

/** The campaign's window as the dial gates read windows. */
export function campaignWindow(campaign: Campaign, defaultTimeZone: string): CallWindow | undefined {
  if (!campaign.window) return undefined;
  return parseCallWindow(campaign.window.hours, campaign.window.time_zone ?? defaultTimeZone, campaign.window.days);
}
