import { campaignCallsQueue } from '../core/callQueues.js';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore } from '../core/callStore.js';
import { HeldCalls } from '../core/heldCalls.js';

import { systemClock } from '../core/time.js';

/** Held calls released at once when a campaign resumes. */
const RELEASE_CONCURRENCY = 64;

/**
 * Pauses a campaign: from now on the consumers hold back its calls that are not ringing yet (no attempt spent);
 * calls ringing or connected carry on. Returns false when it was paused already.
 */
export async function pauseCampaign(connection: RedisClient, prefix: string, campaignId: string): Promise<boolean> {
  return new CallStore(connection, prefix, systemClock).pauseCampaign(campaignId);
}

/**
 * Resumes a paused campaign and releases at once the calls the pause held back (a call waiting for a retry or for
 * its calling window keeps waiting); their `paused` holds (src/core/heldCalls.ts) are cleared. Returns whether it was paused and how many held calls were released.
 */
export async function resumeCampaign(connection: RedisClient, prefix: string, campaignId: string): Promise<{ wasPaused: boolean; released: number }> {
  const { wasPaused, heldJobIds } = await new CallStore(connection, prefix, systemClock).resumeCampaign(campaignId);
  // the pause holds nothing now, consumer or not (report --watch); cleared before the releases below, whose calls a
  // consumer may hold again at once for another gate
  await new HeldCalls(connection, prefix, systemClock).releaseAll(campaignId, 'paused');
  const queue = campaignCallsQueue(connection, prefix, campaignId);
  let released = 0;
  const release = async (jobId: string) => {
    const job = await queue.getJob(jobId);
    if (!job || !(await job.isDelayed())) return; // already picked up by its own re-check, or gone
    // It may be promoted between the check and here by another resume: then there is nothing left to do.
    await job.promote().then(
      () => (released += 1),
      () => undefined,
    );
  };
  try {
    for (let i = 0; i < heldJobIds.length; i += RELEASE_CONCURRENCY) {
      await Promise.all(heldJobIds.slice(i, i + RELEASE_CONCURRENCY).map(release));
    }
  } finally {
    await queue.close();
  }
  return { wasPaused, released };
}
