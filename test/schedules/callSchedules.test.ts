import { Redis } from 'ioredis';
import { loadProfileCatalog } from '../../src/agent/profiles.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { systemClock } from '../../src/core/time.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { CallSchedules, fireSchedule, firingKey, scheduleSchema, startScheduleWorker } from '../../src/schedules/callSchedules.js';
import { runCliInProcess as runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

let redis: Redis;
const prefix = uniquePrefix('schedules');
const config = () => loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix, LOG_LEVEL: 'silent' });
let schedules: CallSchedules;
/** For the tests that watch firings come and go: accepts a pattern firing every second (the CLI and API refuse it). */
let ticking: CallSchedules;

beforeAll(() => {
  redis = new Redis(testRedisUrl());
  schedules = new CallSchedules(redis, prefix);
  ticking = new CallSchedules(redis, prefix, { allowSubMinute: true });
});
afterAll(async () => {
  await schedules.close();
  await ticking.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

describe('recurring calls', () => {
  it('creates, lists and removes a cron schedule with its time zone', async () => {
    const view = await schedules.upsert({ id: 'weekly', cron: '0 9 * * mon', time_zone: 'Europe/Paris', campaign_id: 'clinic', calls: [{ phone_number: '+14155550111' }] });
    expect(view).toMatchObject({ id: 'weekly', cron: '0 9 * * mon', time_zone: 'Europe/Paris' });
    // next Monday 09:00 in Paris
    const next = new Date(view.next_at ?? 0);
    expect(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', weekday: 'short', hour: '2-digit', minute: '2-digit' }).format(next)).toBe('Mon 09:00');
    expect((await schedules.list()).map((s) => s.id)).toContain('weekly');
    expect(await schedules.remove('weekly')).toBe(true);
    expect(await schedules.get('weekly')).toBeUndefined();
  });

  it('refuses a bad pattern, time zone or empty call list with readable reasons', async () => {
    await expect(schedules.upsert({ id: 'bad', cron: 'every tuesday', calls: [{ phone_number: '+14155550111' }] })).rejects.toThrow(/cron: "every tuesday" is not a cron pattern/);
    await expect(schedules.upsert({ id: 'bad', cron: '0 9 * * *', time_zone: 'Mars/Olympus', calls: [] })).rejects.toThrow(/time_zone: must be an IANA time zone[\s\S]*calls: needs at least one call/);
  });

  it('refuses at creation a number no firing could enqueue, and an unknown agent profile, naming each', async () => {
    const checked = new CallSchedules(redis, prefix, { profiles: () => loadProfileCatalog({}), defaultRegion: 'US' });
    try {
      await expect(
        checked.upsert({ id: 'bad-rows', cron: '0 9 * * *', calls: [{ phone_number: '+14155550111' }, { phone_number: '555' }], agent_profile: 'nope' }),
      ).rejects.toThrow(/calls\.1\.phone_number: [\s\S]*agent_profile: unknown agent profile "nope"/);
      expect(await checked.get('bad-rows')).toBeUndefined();
      // a national number is fine when DIAL_DEFAULT_REGION says which country
      expect(await checked.upsert({ id: 'national', cron: '0 9 * * *', calls: [{ phone_number: '(415) 555-0111' }] })).toMatchObject({ id: 'national' });
      expect(await checked.remove('national')).toBe(true);
    } finally {
      await checked.close();
    }
  });

  it('refuses a pattern that fires more than once a minute, saying why; a seconds field naming one second is fine', async () => {
    const calls = [{ phone_number: '+14155550115' }];
    for (const cron of ['* * * * * *', '*/30 * * * * *', '0,30 * * * * *', '0-5 0 9 * * mon']) {
      await expect(schedules.upsert({ id: 'too-often', cron, calls })).rejects.toThrow(`cron: "${cron}" fires more than once a minute`);
    }
    expect(await schedules.get('too-often')).toBeUndefined();
    for (const cron of ['0 * * * * *', '30 0 9 * * mon', '* * * * *']) {
      expect(await schedules.upsert({ id: 'once-a-minute', cron, calls })).toMatchObject({ cron });
    }
    await schedules.remove('once-a-minute');
  });

  it('enqueues a firing once, however often it is met', async () => {
    const producer = new CallProducer({ connection: redis, prefix, maxAttempts: 3 });
    const schedule = scheduleSchema.parse({ id: 'daily', cron: '0 8 * * *', campaign_id: 'daily-list', calls: [{ phone_number: '+14155550112' }, { phone_number: '+14155550113' }] });
    const firing = Date.UTC(2030, 0, 1, 8);
    const first = await fireSchedule(producer, schedule, firing);
    const again = await fireSchedule(producer, schedule, firing);
    expect(first.enqueued).toHaveLength(2);
    expect(again.enqueued).toHaveLength(0);
    expect(again.duplicates.map((d) => d.callId)).toEqual(first.enqueued.map((e) => e.callId));
    const next = await fireSchedule(producer, schedule, firing + 86_400_000);
    expect(next.enqueued).toHaveLength(2); // the next day's firing is new calls
    expect(firingKey('daily', firing, 1)).toBe(`schedule:daily:${firing}:1`);
    await producer.close();
  });

  it('fires every second across a restart of its worker, each firing enqueued exactly once', async () => {
    const logger = createLogger('silent');
    const campaignId = 'every-second';
    await ticking.upsert({ id: 'tick', cron: '* * * * * *', campaign_id: campaignId, calls: [{ phone_number: '+14155550114' }] });
    const store = new CallStore(redis, prefix, systemClock);
    const calls = async () => (await store.list(campaignId)).length;
    const first = startScheduleWorker({ config: config(), logger });
    await waitFor(async () => ((await calls()) >= 2 ? true : undefined), 10_000, 'two firings');
    await first.close();
    // the schedule is created again on restart, as a deployment would: it must not double a firing
    await ticking.upsert({ id: 'tick', cron: '* * * * * *', campaign_id: campaignId, calls: [{ phone_number: '+14155550114' }] });
    const second = startScheduleWorker({ config: config(), logger });
    const before = await calls();
    await waitFor(async () => ((await calls()) >= before + 2 ? true : undefined), 10_000, 'two more firings');
    await schedules.remove('tick');
    await second.close();

    const records = await store.list(campaignId);
    const keys = await store.idempotencyKeys(campaignId, records.map((r) => r.callId));
    const firings = [...keys.values()].map((k) => Number(k.split(':')[2]));
    expect(new Set(firings).size).toBe(records.length); // one call per firing time, none doubled
    for (const at of firings) expect(at % 1000).toBe(0); // keyed by the firing's own time, not by when it ran
  }, 30_000);
});

describe('dialer schedule', () => {
  it('creates, lists and removes a schedule from the command line', async () => {
    const env = { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix };
    const created = await runCli(['schedule', 'create', 'cli-daily', '--cron', '0 8 * * *', '--time-zone', 'Asia/Tokyo', '--campaign', 'reminders', '--number', '+14155550131', '+14155550132'], env);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^cli-daily\t0 8 \* \* \*\tAsia\/Tokyo\treminders\t2 call\(s\)\tnext 20\d\d-\d\d-\d\dT23:00:00.000Z$/m);
    expect((await runCli(['schedule', 'list'], env)).stdout).toMatch(/^cli-daily\t/m);
    const bad = await runCli(['schedule', 'create', 'cli-bad', '--cron', 'daily', '--number', '+14155550131'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cron: "daily" is not a cron pattern/);
    const everySecond = await runCli(['schedule', 'create', 'cli-tick', '--cron', '* * * * * *', '--number', '+14155550131'], env);
    expect(everySecond.code).toBe(2);
    expect(everySecond.stderr).toContain('cron: "* * * * * *" fires more than once a minute');
    expect(everySecond.stderr).toContain('a schedule fires at most once a minute');
    expect((await runCli(['schedule', 'remove', 'cli-daily'], env)).stdout).toBe('removed cli-daily\n');
  }, 120_000);

  it('shows a refused number as typed and names only ways to give a region that schedule create and dnc have', async () => {
    const env = { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix };
    const schedule = await runCli(['schedule', 'create', 'cli-national', '--cron', '0 8 * * *', '--campaign', 'national', '--number', '4155550601'], env);
    expect(schedule.code).toBe(2);
    expect(schedule.stderr).toContain('calls.0.phone_number: not a valid phone number: "4155550601"');
    expect(schedule.stderr).toContain("the campaign's default region (dialer campaign update <id> --region US) or DIAL_DEFAULT_REGION");
    expect(schedule.stderr).not.toMatch(/\*{3}|region column|--region US,/);
    const dnc = await runCli(['dnc', 'add', '4155550703'], env);
    expect(dnc.code).toBe(2);
    expect(dnc.stderr).toContain('"4155550703"');
    expect(dnc.stderr).toContain('or set a default region: DIAL_DEFAULT_REGION');
    expect(dnc.stderr).not.toMatch(/--region|region column/);
  }, 120_000);
});
