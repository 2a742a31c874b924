import { Worker, type Job } from 'bullmq';
import type { RedisClient } from '../core/redisClient.js';
import type { CallStore } from '../core/callStore.js';
import type { Logger } from '../core/logger.js';
import { OUTCOME_WATCHDOG_QUEUE, watchdogSchema, type WatchdogJob } from '../core/outcomeWatchdogQueue.js';
import type { ResultReporter } from '../core/reportResult.js';
import { SECOND, type Clock } from '../core/time.js';

/**
 * Runs the checks: a call still `in_call` when its check fires is reported `failed` by `watchdog` (a no-op if the
 * agent got there first).
 */
export function startOutcomeWatchdogWorker(options: {
  connection: RedisClient;
  prefix: string;
  store: CallStore;
  reporter: ResultReporter;
  clock: Clock;
  logger: Logger;
}): Worker<WatchdogJob> {
  const { store, reporter, clock, logger } = options;
  const check = async (job: Job<WatchdogJob>) => {
    const call = watchdogSchema.parse(job.data);
    const record = await store.get(call.campaignId, call.callId);
    const ids = { callId: call.callId, campaignId: call.campaignId, attempt: call.attempt };
    if (!record || record.state === 'terminal') return { ended: true };
    if (record.state !== 'in_call') {
      // a watchdog ends connected calls only; the results worker would refuse anything else (terminalTransition)
      logger.warn({ ...ids, state: record.state }, 'outcome check found the call not in a call; left to its owner');
      return { ended: false };
    }
    const reason = `no outcome reported by the agent within ${Math.round(call.timeoutMs / SECOND)} s of the answer`;
    logger.warn(ids, reason);
    await reporter.report({ ...ids, outcome: 'failed', reason, reportedBy: 'watchdog', endedAt: clock.now() });
    return { ended: false };
  };
  const worker = new Worker<WatchdogJob>(OUTCOME_WATCHDOG_QUEUE, check, { connection: options.connection, prefix: options.prefix });
  worker.on('error', (err) => logger.error({ err }, 'outcome watchdog error'));
  worker.on('failed', (job, err) => logger.error({ jobId: job?.id, err }, 'outcome check failed; BullMQ retries it'));
  return worker;
}
