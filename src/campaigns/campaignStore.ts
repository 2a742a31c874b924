/**
 * Campaign documents in Redis: one JSON string per campaign (`<prefix>:dialer:{<id>}:campaign`, in the campaign's hash
 * slot) and an index set of defined ids. Stateless: every consumer reads the document when it takes a call, so an edit
 * (a lowered cap, a pause) holds from the next call any consumer takes (within a second for calls waiting on a cap).
 * `paused` lives in the pause set `dialer pause` has always used (CallStore.pauseCampaign), so the old commands and
 * the campaign object agree; the document's `state` holds active / canceled / archived.
 */
import type { RedisClient } from '../core/redisClient.js';
import { z } from 'zod';
import { hasProfile, unknownProfileMessage, type ProfileCatalog } from '../agent/profiles.js';
import { CallStore } from '../core/callStore.js';
import { InvalidInputError } from '../core/errors.js';
import { dialerKeys } from '../core/keys.js';
import type { Clock } from '../core/time.js';
import { cancelCalls, type CancelSummary } from '../producer/cancelCalls.js';
import { pauseCampaign, resumeCampaign } from '../producer/pauseCampaign.js';
import { campaignDocumentKey } from './campaignRegion.js';
import {
  campaignCreateSchema,
  campaignSettingsSchema,
  campaignStatus,
  campaignUpdateSchema,
  checkConsistent,
  describeIssues,
  type Campaign,
  type CampaignSettings,
  type CampaignStatus,
} from './campaignSchema.js';

/** A campaign id with no stored document. */
export class CampaignNotFoundError extends InvalidInputError {
  constructor(readonly campaignId: string) {
    super(`no campaign ${campaignId} (create it with \`dialer campaign create ${campaignId}\`)`);
  }
}

/** `create` of an id that is defined already. */
export class CampaignExistsError extends InvalidInputError {
  constructor(readonly campaignId: string) {
    super(`campaign ${campaignId} exists already (change it with \`dialer campaign update ${campaignId}\`)`);
  }
}

/** Settings that do not validate: every bad field, one per line. */
export class InvalidCampaignError extends InvalidInputError {
  constructor(readonly problems: string[]) {
    super(`invalid campaign:\n  ${problems.join('\n  ')}`);
  }
}

/** A change not allowed in the campaign's state (e.g. resuming an archived one). */
export class CampaignStateError extends InvalidInputError {
  constructor(
    readonly campaignId: string,
    readonly status: CampaignStatus,
    action: string,
  ) {
    super(`campaign ${campaignId} is ${status}: it cannot be ${action}`);
  }
}

/** A campaign as shown: its document, its status now, and whether it is paused. */
export interface CampaignView extends Campaign {
  status: CampaignStatus;
  paused: boolean;
}

/** What a secret is shown as. */
export const HIDDEN_SECRET = '***';

/** The campaign as shown to anyone (CLI, API): a webhook secret is written, never read back; shown only as set. */
export function withSecretHidden(view: CampaignView): CampaignView {
  return view.webhook?.secret ? { ...view, webhook: { ...view.webhook, secret: HIDDEN_SECRET } } : view;
}

const storedSchema = campaignSettingsSchema.extend({
  id: z.string(),
  state: z.enum(['active', 'canceled', 'archived', 'paused']),
  created_at: z.number(),
  updated_at: z.number(),
  ramp_started_at: z.number(),
});

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidCampaignError(describeIssues(parsed.error));
  return parsed.data;
}

/** Campaign objects (see the file's comment). */
export class CampaignStore {
  private readonly calls: CallStore;

  /**
   * `profiles` (AGENT_PROFILES_FILE's catalog): when given, create and update refuse an `agent_profile` it does not
   * hold, as `enqueue --profile` does, instead of every call of the campaign failing later.
   */
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly clock: Clock,
    private readonly profiles?: () => Promise<ProfileCatalog>,
  ) {
    this.calls = new CallStore(redis, prefix, clock);
  }

  /** InvalidCampaignError when `agent_profile` names a profile the catalog lacks. */
  private async checkProfile(profile: string | undefined): Promise<void> {
    if (profile === undefined || !this.profiles) return;
    const catalog = await this.profiles();
    if (!hasProfile(catalog, profile)) throw new InvalidCampaignError([`agent_profile: ${unknownProfileMessage(catalog, profile)}`]);
  }

  private key(id: string): string {
    return campaignDocumentKey(this.prefix, id);
  }

  private indexKey(): string {
    return dialerKeys(this.prefix).campaignDefinitions();
  }

  /** Creates a campaign from unchecked input (InvalidCampaignError lists every bad field; CampaignExistsError). */
  async create(input: unknown): Promise<CampaignView> {
    const { id, ...settings } = parse(campaignCreateSchema, input);
    await this.checkProfile(settings.agent_profile);
    const now = this.clock.now();
    const doc: Campaign = {
      ...settings,
      id,
      state: 'active',
      created_at: now,
      updated_at: now,
      ramp_started_at: settings.starts_at ? Math.max(now, Date.parse(settings.starts_at)) : now,
    };
    const created = await this.redis.set(this.key(id), JSON.stringify(doc), 'NX');
    if (created !== 'OK') throw new CampaignExistsError(id);
    await this.redis.sadd(this.indexKey(), id);
    return this.view(doc);
  }

  /** The stored document, or undefined (an implicit campaign, or none). */
  async get(id: string): Promise<Campaign | undefined> {
    return this.parse(id, await this.redis.get(this.key(id)));
  }

  /**
   * Campaign `id` from its stored document as read from Redis (`raw`; null or undefined: none), as `get` answers it:
   * for a caller that read the document with other keys in one round trip (the consumer's gate reads).
   */
  parse(id: string, raw: string | null | undefined): Campaign | undefined {
    if (raw === null || raw === undefined) return undefined;
    const parsed = storedSchema.safeParse(JSON.parse(raw));
    if (!parsed.success) throw new Error(`stored campaign ${id} does not validate: ${describeIssues(parsed.error).join('; ')}`);
    const { state, ...rest } = parsed.data;
    return { ...rest, state: state === 'paused' ? 'active' : state };
  }

  /** The campaign as shown, or CampaignNotFoundError. */
  async show(id: string): Promise<CampaignView> {
    const doc = await this.get(id);
    if (!doc) throw new CampaignNotFoundError(id);
    return this.view(doc);
  }

  /** Defined campaigns (archived ones only with `archived`), by id. */
  async list(options: { archived?: boolean } = {}): Promise<CampaignView[]> {
    const ids = (await this.redis.smembers(this.indexKey())).sort();
    const views: CampaignView[] = [];
    for (const id of ids) {
      const doc = await this.get(id);
      if (doc && (options.archived || doc.state !== 'archived')) views.push(await this.view(doc));
    }
    return views;
  }

  /**
   * Changes settings (unchecked input: settings, and `unset` naming settings to remove). Allowed while the campaign
   * runs: consumers read the document for every call they take. An archived campaign is read-only.
   */
  async update(id: string, input: unknown): Promise<CampaignView> {
    const change = parse(campaignUpdateSchema, input);
    await this.checkProfile(change.agent_profile);
    const doc = await this.get(id);
    if (!doc) throw new CampaignNotFoundError(id);
    if (doc.state === 'archived') throw new CampaignStateError(id, 'archived', 'changed');
    const { unset, ...settings } = change;
    const next: Campaign = { ...doc, ...settings, updated_at: this.clock.now() };
    for (const name of unset ?? []) delete next[name];
    const consistent = campaignSettingsSchema.superRefine(checkConsistent).safeParse(settingsOf(next));
    if (!consistent.success) throw new InvalidCampaignError(describeIssues(consistent.error));
    await this.redis.set(this.key(id), JSON.stringify(next));
    return this.view(next);
  }

  /** Pauses its calls not ringing yet (the `dialer pause` set). False when it was paused already. */
  async pause(id: string): Promise<boolean> {
    const doc = await this.requireLive(id, 'paused');
    return pauseCampaign(this.redis, this.prefix, doc.id);
  }

  /** Resumes it (held calls released at once); the ramp starts again, as after a cold start. */
  async resume(id: string): Promise<{ wasPaused: boolean; released: number }> {
    const doc = await this.requireLive(id, 'resumed');
    const resumed = await resumeCampaign(this.redis, this.prefix, doc.id);
    if (resumed.wasPaused) await this.redis.set(this.key(id), JSON.stringify({ ...doc, ramp_started_at: this.clock.now(), updated_at: this.clock.now() }));
    return resumed;
  }

  /** Cancels its calls not ringing yet (as `dialer cancel`) and marks it canceled: calls enqueued later end `skipped`. */
  async cancel(id: string): Promise<CancelSummary> {
    const doc = await this.get(id);
    if (!doc) throw new CampaignNotFoundError(id);
    if (doc.state === 'archived') throw new CampaignStateError(id, 'archived', 'canceled');
    await this.redis.set(this.key(id), JSON.stringify({ ...doc, state: 'canceled', updated_at: this.clock.now() }));
    return cancelCalls(this.redis, this.prefix, { campaignId: id }, this.clock);
  }

  /** Archives it: hidden from `campaign list`, read-only, its calls still in the report. Only once it is not running. */
  async archive(id: string): Promise<CampaignView> {
    const doc = await this.get(id);
    if (!doc) throw new CampaignNotFoundError(id);
    const status = campaignStatus(doc, this.clock.now());
    const pending = (await this.calls.counters(id)).total - (await this.calls.counters(id)).terminal;
    if (status !== 'canceled' && status !== 'expired' && status !== 'archived' && pending > 0) {
      throw new CampaignStateError(id, status, `archived while ${pending} of its calls are not over (cancel it first)`);
    }
    const next: Campaign = { ...doc, state: 'archived', updated_at: this.clock.now() };
    await this.redis.set(this.key(id), JSON.stringify(next));
    return this.view(next);
  }

  private async requireLive(id: string, action: string): Promise<Campaign> {
    const doc = await this.get(id);
    if (!doc) throw new CampaignNotFoundError(id);
    const status = campaignStatus(doc, this.clock.now());
    if (status === 'canceled' || status === 'archived') throw new CampaignStateError(id, status, action);
    return doc;
  }

  private async view(doc: Campaign): Promise<CampaignView> {
    const paused = await this.calls.isPaused(doc.id);
    const status = campaignStatus(doc, this.clock.now());
    return { ...doc, status: status === 'active' && paused ? 'paused' : status, paused };
  }
}

/** The settings part of a document (for re-validation after an update). */
function settingsOf(doc: Campaign): CampaignSettings {
  const { id: _id, state: _state, created_at: _c, updated_at: _u, ramp_started_at: _r, ...settings } = doc;
  return settings;
}
