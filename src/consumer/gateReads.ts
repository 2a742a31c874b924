/**
 * What a dial job reads before its gates decide (dialWorker.ts), in one script (readDialGates.lua) instead of five
 * commands one after the other: the campaign's document (CampaignStore.get), the cancel request on the call's record
 * (CallStore.isCancelRequested), the do-not-call list (isDoNotCall), the paused campaigns (isPaused) and the platform
 * back-off (PlatformBackoff.remainingMs). Each is read afresh for every job, as before: nothing is cached, so a
 * do-not-call entry, a pause or a campaign edit holds from the next call any consumer takes.
 *
 * The keys share one hash slot: on Redis Cluster QUEUE_PREFIX carries a hash tag (config.ts), so every key under it
 * lives in its slot. The call's record lives in its campaign's call shard (callShards.ts): when that is not
 * QUEUE_PREFIX's own, its cancel request is read with its own command, alongside.
 */
import { campaignDocumentKey } from '../campaigns/campaignRegion.js';
import type { CallStore } from '../core/callStore.js';
import { LuaScript, replies } from '../core/luaScript.js';
import type { RedisClient } from '../core/redisClient.js';
import type { DialGateDeps } from './dialGates.js';

/** readDialGates.lua's cancel field when the record was not among its keys. */
const CANCEL_NOT_READ = -1;

/** Keys: the campaign's document, the do-not-call set, the paused campaigns, the platform back-off[, the call's record]. */
const readDialGates = new LuaScript<
  readonly string[],
  [phoneNumber: string, campaignId: string],
  unknown[]
>('readDialGates', new URL('./lua/', import.meta.url), 'variable', replies.array);

/** What the gates of one dial job read (see the file's comment). */
export interface GateReads {
  /** The campaign's stored document as Redis holds it (CampaignStore.parse reads it), undefined without one. */
  campaignDocument: string | undefined;
  doNotCall: boolean;
  paused: boolean;
  cancelRequested: boolean;
  /** Milliseconds the platform back-off still runs (0 when none). */
  backoffMs: number;
}

/** The call a dial job carries, as far as its gates read it. */
export interface GateReadCall {
  campaignId: string;
  callId: string;
  phoneNumber: string;
}

/** Thrown when readDialGates.lua answers something else than its five fields: a bug between the script and here. */
export class GateReadsReplyError extends Error {
  override readonly name = 'GateReadsReplyError';
}

export class GateReader {
  constructor(
    private readonly redis: RedisClient,
    /** QUEUE_PREFIX (campaign documents live under it, not under a call shard). */
    private readonly prefix: string,
    private readonly store: CallStore,
    /** The platform back-off key (PlatformBackoff.key). */
    private readonly backoffKey: string,
  ) {}

  /** Reads what the gates of `call` need, in one round trip (two when its record lives in another call shard). */
  async read(call: GateReadCall): Promise<GateReads> {
    const { keys } = this.store;
    const sameSlot = this.store.shards.prefixOf(call.campaignId) === this.store.shards.prefix;
    const scriptKeys: string[] = [
      campaignDocumentKey(this.prefix, call.campaignId),
      keys.doNotCall(),
      keys.pausedCampaigns(),
      this.backoffKey,
    ];
    if (sameSlot) scriptKeys.push(keys.callRecord(call.campaignId, call.callId));
    const [reply, cancelApart] = await Promise.all([
      readDialGates.run(this.redis, scriptKeys, [call.phoneNumber, call.campaignId]),
      sameSlot ? undefined : this.store.isCancelRequested(call.campaignId, call.callId),
    ]);
    const [document, doNotCall, paused, pttl, cancel] = reply;
    if (
      reply.length !== 5 ||
      !(document === null || typeof document === 'string') ||
      typeof doNotCall !== 'number' ||
      typeof paused !== 'number' ||
      typeof pttl !== 'number' ||
      typeof cancel !== 'number'
    ) {
      throw new GateReadsReplyError(`readDialGates.lua answered an unexpected reply: ${JSON.stringify(reply)}`);
    }
    return {
      campaignDocument: document ?? undefined,
      doNotCall: doNotCall === 1,
      paused: paused === 1,
      cancelRequested: cancel === CANCEL_NOT_READ ? cancelApart === true : cancel === 1,
      backoffMs: Math.max(0, pttl),
    };
  }
}

/**
 * The gates' store (DialGateDeps.store) answering from `reads` for `call`, and from `store` itself for anything else
 * (another number, campaign or call: not read in advance, asked as before).
 */
export function answeredGateStore(call: GateReadCall, reads: GateReads, store: DialGateDeps['store']): DialGateDeps['store'] {
  return {
    isCancelRequested: (campaignId, callId) =>
      campaignId === call.campaignId && callId === call.callId ? Promise.resolve(reads.cancelRequested) : store.isCancelRequested(campaignId, callId),
    isDoNotCall: (phoneNumber) => (phoneNumber === call.phoneNumber ? Promise.resolve(reads.doNotCall) : store.isDoNotCall(phoneNumber)),
    isPaused: (campaignId) => (campaignId === call.campaignId ? Promise.resolve(reads.paused) : store.isPaused(campaignId)),
  };
}
