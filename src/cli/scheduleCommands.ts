/** `dialer schedule create|list|remove|run`: recurring calls (src/schedules). */
import type { Command } from 'commander';
import { loadProfileCatalog } from '../agent/profiles.js';
import { CallSchedules, startScheduleWorker, type ScheduleView } from '../schedules/callSchedules.js';
import { InvalidInputError } from '../core/errors.js';
import { REGION_SOURCES } from '../core/phone.js';
import { handleShutdownSignals } from '../core/shutdownSignals.js';
import { MINUTE } from '../core/time.js';
import { action, cliContext, exitWithError, redisAwayError, requireRedis, withRedis } from './cliContext.js';

/** A schedule worker's drain is one firing's enqueue; one still running after this is stuck (Redis gone). */
const SCHEDULE_DRAIN_TIMEOUT_MS = MINUTE;

function withSchedules<T>(body: (schedules: CallSchedules) => Promise<T>): Promise<T> {
  const { config } = cliContext();
  return withRedis(config, async (redis) => {
    const schedules = new CallSchedules(redis, config.queuePrefix, { profiles: () => loadProfileCatalog(process.env), defaultRegion: config.dial.defaultRegion, regionSources: REGION_SOURCES.cliSchedule });
    try {
      return await body(schedules);
    } finally {
      await schedules.close();
    }
  });
}

function line(s: ScheduleView): string {
  const next = s.next_at === undefined ? '-' : new Date(s.next_at).toISOString();
  return `${s.id}\t${s.cron}\t${s.time_zone}\t${s.campaign_id}\t${s.calls.length} call(s)\tnext ${next}\n`;
}

export function registerScheduleCommands(program: Command): void {
  const schedule = program.command('schedule').description('recurring calls: cron schedules with a time zone; each firing enqueues its calls once');
  schedule
    .command('create')
    .argument('<id>', 'schedule id (creating an existing id replaces it)')
    .requiredOption('--cron <pattern>', 'cron pattern, e.g. "0 9 * * mon" (at most once a minute: a leading seconds field may name one second)')
    .option('--time-zone <zone>', 'IANA time zone the pattern is read in', 'UTC')
    .option('--campaign <id>', 'campaign of the calls')
    .option('--number <number...>', 'number(s) to call at each firing')
    .option('--profile <name>', 'agent profile of the calls')
    .option('--json', 'print the schedule as JSON')
    .action(
      action(async (id: string, opts: { cron: string; timeZone: string; campaign?: string; number?: string[]; profile?: string; json?: boolean }) => {
        if (!opts.number?.length) throw new InvalidInputError('--number: give at least one number to call');
        const view = await withSchedules((s) =>
          s.upsert({ id, cron: opts.cron, time_zone: opts.timeZone, campaign_id: opts.campaign, agent_profile: opts.profile, calls: opts.number?.map((n) => ({ phone_number: n })) }),
        );
        process.stdout.write(opts.json ? `${JSON.stringify(view)}\n` : line(view));
      }),
    );
  schedule
    .command('list')
    .option('--json', 'JSON lines')
    .action(
      action(async (opts: { json?: boolean }) => {
        for (const s of await withSchedules((schedules) => schedules.list())) process.stdout.write(opts.json ? `${JSON.stringify(s)}\n` : line(s));
      }),
    );
  schedule
    .command('remove')
    .argument('<id>')
    .action(
      action(async (id: string) => {
        const removed = await withSchedules((s) => s.remove(id));
        if (!removed) throw new InvalidInputError(`no schedule ${id}`);
        process.stdout.write(`removed ${id}\n`);
      }),
    );
  schedule
    .command('run')
    .description('process the schedules\' firings until SIGTERM/SIGINT (run one or more)')
    .action(
      action(async () => {
        const { config, logger } = cliContext();
        await requireRedis(config);
        const handle = startScheduleWorker({ config, logger });
        const drain = async () => {
          // a firing is Redis work: with Redis away there is nothing a drain could finish (exit 4 and the one line)
          const away = await redisAwayError(config);
          if (away) exitWithError(away);
          await handle.close();
        };
        handleShutdownSignals({ drain, force: () => handle.close() }, logger, undefined, { drainTimeoutMs: SCHEDULE_DRAIN_TIMEOUT_MS });
        await handle.worker.waitUntilReady();
        logger.info('schedule worker running');
      }),
    );
}
