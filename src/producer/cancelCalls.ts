import { campaignCallsQueue } from '../core/callQueues.js';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore } from '../core/callStore.js';
import { HeldCalls } from '../core/heldCalls.js';
import { terminalTransition } from '../core/outcomes.js';

import { removeQueuedJobs } from '../core/removeQueuedJobs.js';
import { ResultReporter } from '../core/reportResult.js';
import { systemClock, type Clock } from '../core/time.js';

/** Calls handled at once when canceling a whole campaign. */
const CANCEL_CONCURRENCY = 64;
export const CANCEL_REASON = 'canceled by an operator';

export interface CancelSummary {
  canceled: string[];
  /**
   * Ringing or connected right now: not ended at once (hang-up is the agent's, not the queue's), but not tried again
   * either: an attempt that ends unanswered ends the call `canceled` (CallRecord.cancelRequestedAt).
   */
  inFlight: string[];
  alreadyEnded: string[];
  unknown: string[];
}

/**
 * Cancels calls that cannot have rung yet: queued, waiting for a retry, or dialing while the consumer waits for its CPS
 * slot (the attempt's dial is not marked sent). Their outcome becomes `canceled` in one Lua script (the operator's rule
 * in `terminalTransition`), so a consumer about to dial finds the call ended when it claims the start (claimDial.lua)
 * and dials nothing; the outcome is reported on `call-results` like any other, and once all are canceled their jobs
 * are removed from `calls` where they are not locked, in one pass over the wait list (removeQueuedJobs; a job removed
 * one by one costs an O(N) LREM, quadratic for a whole campaign). Calls whose dial may have gone out are left to the agent
 * (`inFlight`); each is noted so that, unanswered, it ends `canceled` instead of being tried again.
 */
export async function cancelCalls(
  connection: RedisClient,
  prefix: string,
  target: { campaignId: string; callIds?: readonly string[] },
  clock: Clock = systemClock,
): Promise<CancelSummary> {
  const store = new CallStore(connection, prefix, clock);
  const queue = campaignCallsQueue(connection, prefix, target.campaignId);
  const reporter = new ResultReporter(connection, prefix);
  const held = new HeldCalls(connection, prefix, clock);
  const summary: CancelSummary = { canceled: [], inFlight: [], alreadyEnded: [], unknown: [] };
  // an id given twice is one call: counted once
  const ids = target.callIds ? [...new Set(target.callIds)] : await store.callIds(target.campaignId);

  const cancelOne = async (callId: string) => {
    const result = {
      callId,
      campaignId: target.campaignId,
      outcome: 'canceled' as const,
      reason: CANCEL_REASON,
      reportedBy: 'operator' as const,
      endedAt: clock.now(),
    };
    if ((await store.applyTransition(result, terminalTransition(result))).status === 'applied') {
      summary.canceled.push(callId);
      await reporter.report(result);
      return;
    }
    const record = await store.get(target.campaignId, callId);
    if (!record) summary.unknown.push(callId);
    else if (record.state === 'terminal') summary.alreadyEnded.push(callId);
    // its dial may have gone out: it is not tried again after this attempt (the consumer ends it `canceled`)
    else if (await store.requestCancel(target.campaignId, callId)) summary.inFlight.push(callId);
    else summary.alreadyEnded.push(callId);
  };

  try {
    for (let i = 0; i < ids.length; i += CANCEL_CONCURRENCY) {
      const before = summary.canceled.length;
      await Promise.all(ids.slice(i, i + CANCEL_CONCURRENCY).map(cancelOne));
      // a canceled call is held back by no gate any more (report --watch)
      await held.release(target.campaignId, summary.canceled.slice(before));
    }
    // a locked job is being picked up right now: the consumer finds the call ended and completes it itself
    await removeQueuedJobs(connection, queue, summary.canceled).catch(() => 0);
  } finally {
    await reporter.close();
    await queue.close();
  }
  return summary;
}
