import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { effectiveCps, type Campaign } from '../../src/campaigns/campaignSchema.js';
import { CampaignExistsError, CampaignNotFoundError, CampaignStateError, CampaignStore, InvalidCampaignError } from '../../src/campaigns/campaignStore.js';
import { CallStore } from '../../src/core/callStore.js';
import { systemClock } from '../../src/core/time.js';
import { runCliInProcess as runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

let redis: Redis;
const prefix = uniquePrefix('campaigns');
let store: CampaignStore;

beforeAll(() => {
  redis = new Redis(testRedisUrl());
  store = new CampaignStore(redis, prefix, systemClock);
});
afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

describe('campaign objects', () => {
  it('creates a campaign and shows it with its status', async () => {
    const view = await store.create({ id: 'spring', name: 'Spring survey', cps: 5, max_active_calls: 20, window: { hours: '09:00-20:00', days: 'mon-fri' } });
    expect(view).toMatchObject({ id: 'spring', name: 'Spring survey', cps: 5, max_active_calls: 20, status: 'active', paused: false });
    expect(await store.show('spring')).toMatchObject({ id: 'spring', cps: 5 });
    await expect(store.create({ id: 'spring' })).rejects.toBeInstanceOf(CampaignExistsError);
  });

  it('refuses bad settings naming every bad field', async () => {
    const err = await store.create({ id: 'bad', cps: -1, max_active_calls: 1.5, ends_at: 'tomorrow', color: 'red', window: { hours: '25:00-26:00' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidCampaignError);
    const message = (err as Error).message;
    expect(message).toMatch(/cps: must be > 0/);
    expect(message).toMatch(/max_active_calls:/);
    expect(message).toMatch(/ends_at: must be an ISO 8601 date/);
    expect(message).toMatch(/color/);
    expect(message).toMatch(/window\.hours/);
    const order = await store.create({ id: 'order', starts_at: '2030-01-02T00:00:00Z', ends_at: '2030-01-01T00:00:00Z' }).catch((e: unknown) => e);
    expect((order as Error).message).toMatch(/ends_at: must be after starts_at/);
    const ramp = await store.create({ id: 'ramp', ramp: { from_cps: 1, over_s: 60 } }).catch((e: unknown) => e);
    expect((ramp as Error).message).toMatch(/ramp: needs cps/);
  });

  it('updates settings while running and removes them with unset', async () => {
    await store.create({ id: 'edit', cps: 10, max_active_calls: 5 });
    expect(await store.update('edit', { max_active_calls: 2 })).toMatchObject({ max_active_calls: 2, cps: 10 });
    const removed = await store.update('edit', { unset: ['cps'] });
    expect(removed.cps).toBeUndefined();
    await expect(store.update('edit', { ramp: { from_cps: 1, over_s: 10 } })).rejects.toThrow(/ramp: needs cps/);
    await expect(store.update('nope', { cps: 1 })).rejects.toBeInstanceOf(CampaignNotFoundError);
  });

  it('derives scheduled and expired from its dates, paused from the pause set', async () => {
    await store.create({ id: 'later', starts_at: new Date(Date.now() + 3_600_000).toISOString() });
    expect((await store.show('later')).status).toBe('scheduled');
    await store.create({ id: 'over', starts_at: '2020-01-01T00:00:00Z', ends_at: '2020-02-01T00:00:00Z' });
    expect((await store.show('over')).status).toBe('expired');
    await store.create({ id: 'pausable' });
    expect(await store.pause('pausable')).toBe(true);
    expect(await new CallStore(redis, prefix, systemClock).isPaused('pausable')).toBe(true); // the set `dialer pause` uses
    expect((await store.show('pausable')).status).toBe('paused');
    expect((await store.resume('pausable')).wasPaused).toBe(true);
    expect((await store.show('pausable')).status).toBe('active');
  });

  it('cancels, then archives; an archived campaign is read-only and hidden from the list', async () => {
    await store.create({ id: 'done' });
    await store.cancel('done');
    expect((await store.show('done')).status).toBe('canceled');
    await expect(store.resume('done')).rejects.toBeInstanceOf(CampaignStateError);
    await store.archive('done');
    await expect(store.update('done', { cps: 1 })).rejects.toBeInstanceOf(CampaignStateError);
    expect((await store.list()).map((c) => c.id)).not.toContain('done');
    expect((await store.list({ archived: true })).map((c) => c.id)).toContain('done');
  });

  it('ramps its rate evenly from from_cps to cps', () => {
    const campaign: Campaign = { id: 'r', state: 'active', created_at: 0, updated_at: 0, ramp_started_at: 0, cps: 10, ramp: { from_cps: 2, over_s: 10 } };
    expect(effectiveCps(campaign, 0)).toBe(2);
    expect(effectiveCps(campaign, 5000)).toBe(6);
    expect(effectiveCps(campaign, 10_000)).toBe(10);
    expect(effectiveCps(campaign, 60_000)).toBe(10);
  });
});

describe('dialer campaign', () => {
  const env = () => ({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix });

  it('creates, shows and updates a campaign from the command line', async () => {
    const created = await runCli(['campaign', 'create', 'cli-one', '--cps', '3', '--max-active', '4', '--ramp-from', '1', '--ramp-over', '2m', '--retry-busy', '10m', '--json'], env());
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ id: 'cli-one', cps: 3, max_active_calls: 4, ramp: { from_cps: 1, over_s: 120 }, retry_delays_s: { busy: 600 } });
    const updated = await runCli(['campaign', 'update', 'cli-one', '--max-active', '1', '--unset', 'ramp', '--json'], env());
    expect(updated.code, updated.stderr).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ max_active_calls: 1 });
    expect(JSON.parse(updated.stdout).ramp).toBeUndefined();
    const shown = await runCli(['campaign', 'show', 'cli-one'], env());
    expect(shown.stdout).toMatch(/campaign cli-one: active/);
    const listed = await runCli(['campaign', 'list'], env());
    expect(listed.stdout).toMatch(/^cli-one\tactive/m);
  }, 120_000);

  it('never shows a webhook secret back, as JSON or as text, and shows none when none is set', async () => {
    const created = await runCli(['campaign', 'create', 'cli-hook', '--webhook-url', 'https://example.com/h', '--webhook-secret', 's3cr3t', '--json'], env());
    expect(created.code, created.stderr).toBe(0);
    for (const args of [['campaign', 'show', 'cli-hook', '--json'], ['campaign', 'show', 'cli-hook'], ['campaign', 'update', 'cli-hook', '--cps', '2', '--json']]) {
      const run = await runCli(args, env());
      expect(run.stdout).not.toContain('s3cr3t');
      expect(run.stdout).toContain('***');
    }
    expect(created.stdout).not.toContain('s3cr3t');
    const bare = await runCli(['campaign', 'create', 'cli-hook-bare', '--webhook-url', 'https://example.com/h'], env());
    expect(bare.stdout).not.toContain('***');
  }, 120_000);

  it('refuses an agent profile the catalog lacks (every call would fail later), from the command line', async () => {
    const run = await runCli(['campaign', 'create', 'cli-ghost', '--profile', 'nope'], env());
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/agent_profile: unknown agent profile "nope"/);
    const made = await runCli(['campaign', 'create', 'cli-ghost'], env());
    expect(made.code, made.stderr).toBe(0);
    expect((await runCli(['campaign', 'update', 'cli-ghost', '--profile', 'nope'], env())).code).toBe(2);
  }, 120_000);

  it('exits 2 with every bad field named', async () => {
    const run = await runCli(['campaign', 'create', 'cli-bad', '--cps', 'fast', '--ends-at', 'soon'], env());
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/cps:/);
    expect(run.stderr).toMatch(/ends_at: must be an ISO 8601 date/);
    const missing = await runCli(['campaign', 'show', 'cli-nothing'], env());
    expect(missing.code).toBe(2);
    // no campaign of that name at all: named, with the ones there are (or how to make one)
    expect(missing.stderr).toMatch(/^dialer: no campaign "cli-nothing"/);
  }, 120_000);
});
