import { callShardsOf, type CallShards } from './callShards.js';

/**
 * Redis keys the dialer owns (besides BullMQ's own). Keys touched by one script share a hash tag:
 * `{campaign}` for a campaign's records and counters, `{dialer-cps}` for the global dial limiter,
 * so the same scripts run on Redis Cluster.
 */
export interface DialerKeys {
  callRecord(campaignId: string, callId: string): string;
  campaignCounters(campaignId: string): string;
  campaignCalls(campaignId: string): string;
  campaignIndex(): string;
  /** Ids of the campaigns defined as objects (`campaign create`; CampaignStore), whether or not they have calls. */
  campaignDefinitions(): string;
  dialWindow(): string;
  /** Exists while the dial queue backs off after LiveKit/network failures (PX = time left); no dial goes out then. */
  platformBackoff(): string;
  /** Consecutive platform failures behind the current back-off (doubles it per failed probe). */
  platformFailures(): string;
  doNotCall(): string;
  pausedCampaigns(): string;
  /** Job ids of a paused campaign's calls held back by the pause (released on resume). */
  pausedHeld(campaignId: string): string;
  /** Why the consumer holds each of a campaign's calls back now (call id → reason; heldCalls.ts). */
  heldCalls(campaignId: string): string;
}

/**
 * Builds the key names under QUEUE_PREFIX. A campaign's keys live in its call shard (callShards.ts: QUEUE_PREFIX itself
 * with one shard), the others under QUEUE_PREFIX.
 */
export function dialerKeys(prefix: string, shards: CallShards = callShardsOf(prefix)): DialerKeys {
  const campaign = (id: string) => `${shards.prefixOf(id)}:dialer:{${id}}`;
  return {
    callRecord: (campaignId, callId) => `${campaign(campaignId)}:call:${callId}`,
    campaignCounters: (campaignId) => `${campaign(campaignId)}:counters`,
    campaignCalls: (campaignId) => `${campaign(campaignId)}:calls`,
    campaignIndex: () => `${prefix}:dialer:campaigns`,
    campaignDefinitions: () => `${prefix}:dialer:campaign-defs`,
    dialWindow: () => `${prefix}:dialer:{dialer-cps}:window`,
    platformBackoff: () => `${prefix}:dialer:{dialer-cps}:platform-backoff`,
    platformFailures: () => `${prefix}:dialer:{dialer-cps}:platform-failures`,
    doNotCall: () => `${prefix}:dialer:dnc`,
    pausedCampaigns: () => `${prefix}:dialer:paused`,
    pausedHeld: (campaignId) => `${campaign(campaignId)}:paused-held`,
    heldCalls: (campaignId) => `${campaign(campaignId)}:held`,
  };
}
