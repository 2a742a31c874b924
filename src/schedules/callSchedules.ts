/**
 * Recurring calls (issue 12 §4): cron schedules with a time zone, kept as BullMQ job schedulers
 * (Queue.upsertJobScheduler) on the internal queue `call-schedules`. Each firing is one job whose id BullMQ derives
 * from the scheduler and the firing time (`repeat:<id>:<ms>`), and the calls it enqueues carry idempotency keys
 * derived from that same firing time (`schedule:<id>:<ms>:<row>`): a firing met twice (a restart, a re-created
 * schedule, a job retried after a crash) enqueues its calls once. Run the firings with `dialer schedule run` (any
 * number of processes; each firing is processed by one).
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { CountryCode } from 'libphonenumber-js';
import { hasProfile, unknownProfileMessage, type ProfileCatalog } from '../agent/profiles.js';
import { campaignRegions } from '../campaigns/campaignRegion.js';
import type { RedisClient } from '../core/redisClient.js';
import { z } from 'zod';
import { isTimeZone } from '../core/callWindow.js';
import type { DialerConfig } from '../core/config.js';
import { errorMessage, InvalidInputError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { callMetadataSchema, DEFAULT_CAMPAIGN_ID, idSchema } from '../core/queues.js';
import { parsePhoneNumber, PhoneNumberError } from '../core/phone.js';
import { closeConnection, createWorkerConnection } from '../core/redisConnection.js';
import { CallProducer, type EnqueueSummary } from '../producer/enqueueCalls.js';

/** Internal queue of the schedules' firings (not part of the outside contract). */
export const CALL_SCHEDULES_QUEUE = 'call-schedules';
/** Calls one firing may enqueue (a daily list); larger batches belong in `import`. */
export const MAX_SCHEDULED_CALLS = 1000;
/** Firing jobs kept for inspection. */
const FIRING_RETENTION_S = 7 * 24 * 60 * 60;
/** A firing whose enqueue failed (Redis away) is tried again this many times, a second apart and doubling. */
const FIRING_ATTEMPTS = 5;
const FIRING_RETRY_MS = 1000;
/** Fields of a cron pattern with a leading seconds field (cron-parser's six-field form). */
const CRON_FIELDS_WITH_SECONDS = 6;
/** A seconds field that names one second (0-59): such a pattern fires at most once a minute. */
const ONE_SECOND_FIELD = /^[0-5]?\d$/;

/**
 * Why `cron` would fire more often than once a minute, or undefined. Every firing rings the same numbers (each under a
 * new key), so a schedule fires at most once a minute: a seconds field, when there is one, must name one second
 * (`30 0 9 * * mon`), since only then do two firings fall in different minutes. A star, a step, a list or a range
 * in it fires again within the minute and is refused.
 */
export function subMinuteCron(cron: string): string | undefined {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== CRON_FIELDS_WITH_SECONDS) return undefined;
  const seconds = fields[0] ?? '';
  if (ONE_SECOND_FIELD.test(seconds)) return undefined;
  return (
    `"${cron}" fires more than once a minute (its seconds field "${seconds}" names more than one second), and every firing ` +
    `rings the same numbers again: a schedule fires at most once a minute, so drop the seconds field or give it one value (e.g. 0)`
  );
}

/** A schedule as created: what it enqueues, and when (a cron pattern read in `time_zone`). */
export const scheduleSchema = z
  .object({
    id: idSchema,
    cron: z.string().min(1).describe('cron pattern, e.g. "0 9 * * mon" (minute hour day month weekday; an optional leading seconds field naming one second: a schedule fires at most once a minute)'),
    time_zone: z.string().refine(isTimeZone, 'must be an IANA time zone such as Europe/Paris').default('UTC'),
    campaign_id: idSchema.default(DEFAULT_CAMPAIGN_ID),
    calls: z
      .array(z.object({ phone_number: z.string().min(1), metadata: callMetadataSchema.optional() }).strict())
      .min(1, 'needs at least one call')
      .max(MAX_SCHEDULED_CALLS, `at most ${MAX_SCHEDULED_CALLS} calls per firing`),
    agent_profile: z.string().min(1).optional(),
  })
  .strict();
export type Schedule = z.infer<typeof scheduleSchema>;

/** A schedule as listed: its settings and the next firing (epoch ms). */
export interface ScheduleView extends Schedule {
  next_at: number | undefined;
}

/** The idempotency key of row `row` of the firing at `firingMs`: the same firing always gives the same calls. */
export function firingKey(scheduleId: string, firingMs: number, row: number): string {
  return `schedule:${scheduleId}:${firingMs}:${row}`;
}

/** Enqueues one firing's calls with keys derived from its time; a repeat of the same firing finds them enqueued. */
export async function fireSchedule(producer: CallProducer, schedule: Schedule, firingMs: number): Promise<EnqueueSummary> {
  return producer.enqueueCalls(
    schedule.calls.map((row, index) => ({
      phoneNumber: row.phone_number,
      campaignId: schedule.campaign_id,
      metadata: row.metadata,
      agentProfile: schedule.agent_profile,
      key: firingKey(schedule.id, firingMs, index),
    })),
  );
}

/** Creating, listing and removing schedules (the CLI's and the API's). */
export class CallSchedules {
  private readonly queue: Queue<Schedule>;
  private closed = false;

  /**
   * `checks`: with `profiles` (AGENT_PROFILES_FILE's catalog) an unknown `agent_profile` is refused; every call's number
   * is read as a firing would read it (the campaign's default region, else `defaultRegion`, DIAL_DEFAULT_REGION), so a
   * number no firing could enqueue is refused now rather than logged at each firing.
   */
  constructor(
    private readonly connection: RedisClient,
    private readonly prefix: string,
    private readonly checks: {
      profiles?: () => Promise<ProfileCatalog>;
      defaultRegion?: CountryCode;
      regionSources?: string;
      /** Accept patterns firing more than once a minute (tests that watch firings come and go); never the CLI or API. */
      allowSubMinute?: boolean;
    } = {},
  ) {
    this.queue = new Queue<Schedule>(CALL_SCHEDULES_QUEUE, { connection, prefix });
  }

  /** Every problem a firing of `schedule` would meet with its numbers or its profile, as `field: reason` lines. */
  private async problems(schedule: Schedule): Promise<string[]> {
    const problems: string[] = [];
    const tooOften = this.checks.allowSubMinute ? undefined : subMinuteCron(schedule.cron);
    if (tooOften !== undefined) problems.push(`cron: ${tooOften}`);
    const region = (await campaignRegions(this.connection, this.prefix, [schedule.campaign_id])).get(schedule.campaign_id) ?? this.checks.defaultRegion;
    schedule.calls.forEach((row, index) => {
      try {
        parsePhoneNumber(row.phone_number, region, this.checks.regionSources);
      } catch (err) {
        if (!(err instanceof InvalidInputError)) throw err;
        // the caller typed this number: show it as typed (PhoneNumberError.message masks it for logs)
        problems.push(`calls.${index}.phone_number: ${err instanceof PhoneNumberError ? err.forPerson : err.message}`);
      }
    });
    if (schedule.agent_profile !== undefined && this.checks.profiles) {
      const catalog = await this.checks.profiles();
      if (!hasProfile(catalog, schedule.agent_profile)) problems.push(`agent_profile: ${unknownProfileMessage(catalog, schedule.agent_profile)}`);
    }
    return problems;
  }

  /**
   * Creates or replaces a schedule from unchecked input: InvalidInputError naming every bad field, or a pattern BullMQ
   * cannot read. Replacing keeps firings already made; the next one follows the new pattern.
   */
  async upsert(input: unknown): Promise<ScheduleView> {
    const parsed = scheduleSchema.safeParse(input);
    if (!parsed.success) throw new InvalidInputError(`invalid schedule:\n  ${parsed.error.issues.map((i) => `${i.path.join('.') || '(schedule)'}: ${i.message}`).join('\n  ')}`);
    const schedule = parsed.data;
    const problems = await this.problems(schedule);
    if (problems.length > 0) throw new InvalidInputError(`invalid schedule:\n  ${problems.join('\n  ')}`);
    try {
      await this.queue.upsertJobScheduler(
        schedule.id,
        { pattern: schedule.cron, tz: schedule.time_zone },
        {
          name: 'fire',
          data: schedule,
          opts: { attempts: FIRING_ATTEMPTS, backoff: { type: 'exponential', delay: FIRING_RETRY_MS }, removeOnComplete: { age: FIRING_RETENTION_S }, removeOnFail: { age: FIRING_RETENTION_S } },
        },
      );
    } catch (err) {
      // cron-parser's refusal of the pattern (BullMQ computes the next firing on upsert)
      throw new InvalidInputError(`invalid schedule:\n  cron: "${schedule.cron}" is not a cron pattern BullMQ reads (${errorMessage(err)})`);
    }
    return (await this.get(schedule.id)) ?? { ...schedule, next_at: undefined };
  }

  async get(id: string): Promise<ScheduleView | undefined> {
    const found = await this.queue.getJobScheduler(id);
    return found ? viewOf(found) : undefined;
  }

  /** Every schedule, by id. */
  async list(): Promise<ScheduleView[]> {
    const all = await this.queue.getJobSchedulers(0, -1, true);
    return all
      .map(viewOf)
      .filter((v): v is ScheduleView => v !== undefined)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Removes a schedule (firings already enqueued stay); false when there was none. */
  async remove(id: string): Promise<boolean> {
    return this.queue.removeJobScheduler(id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.close();
  }
}

function viewOf(json: { key: string; next?: number; template?: { data?: unknown } }): ScheduleView | undefined {
  const parsed = scheduleSchema.safeParse(json.template?.data);
  return parsed.success ? { ...parsed.data, next_at: json.next } : undefined;
}

export interface ScheduleWorkerHandle {
  worker: Worker<Schedule>;
  /** Drains the firing being processed, then closes; idempotent. */
  close(): Promise<void>;
}

/** Processes firings: each enqueues its calls (keys from its firing time) through the producer `enqueue` uses. */
export function startScheduleWorker(options: { config: DialerConfig; logger: Logger }): ScheduleWorkerHandle {
  const { config } = options;
  const logger = options.logger.child({ component: 'schedules' });
  const connection = createWorkerConnection(config.redis);
  const producer = new CallProducer({ connection, prefix: config.queuePrefix, maxAttempts: config.dial.maxAttempts, defaultRegion: config.dial.defaultRegion });
  const process = async (job: Job<Schedule>) => {
    const schedule = scheduleSchema.parse(job.data);
    const firingMs = job.opts.prevMillis ?? job.timestamp + (job.opts.delay ?? 0);
    const summary = await fireSchedule(producer, schedule, firingMs);
    const log = { scheduleId: schedule.id, campaignId: schedule.campaign_id, firingAt: new Date(firingMs).toISOString() };
    if (summary.rejected.length) logger.warn({ ...log, rejected: summary.rejected }, 'schedule fired; some of its calls were refused');
    logger.info({ ...log, enqueued: summary.enqueued.length, duplicates: summary.duplicates.length }, 'schedule fired');
    return { enqueued: summary.enqueued.length, duplicates: summary.duplicates.length, rejected: summary.rejected.length };
  };
  const worker = new Worker<Schedule>(CALL_SCHEDULES_QUEUE, process, { connection, prefix: config.queuePrefix });
  worker.on('error', (err) => logger.error({ err }, 'schedule worker error'));
  worker.on('failed', (job, err) => logger.error({ jobId: job?.id, err }, 'a schedule firing failed; BullMQ tries it again'));
  let closing: Promise<void> | undefined;
  return {
    worker,
    close() {
      closing ??= worker
        .close()
        .catch((err: unknown) => logger.error({ err }, 'closing the schedule worker failed'))
        .then(() => producer.close())
        .catch((err: unknown) => logger.error({ err }, 'closing the schedule producer failed'))
        .then(() => closeConnection(connection));
      return closing;
    },
  };
}
