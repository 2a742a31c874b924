import type { CallQueues } from '../core/callQueues.js';
import type { CountryCode } from 'libphonenumber-js';
import type { ProfileCatalog } from '../agent/profiles.js';
import type { RedisClient } from '../core/redisClient.js';
import type { CallStore } from '../core/callStore.js';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/time.js';
import type { CallProducer } from '../producer/enqueueCalls.js';
import type { CallCampaignIndex } from './callIndex.js';
import type { IdempotencyKeys } from './idempotency.js';

/**
 * What the routes work with: one Redis connection and the library objects on it. None of it holds request state (no
 * cache of calls, keys or counters), so any number of API processes can serve the same Redis.
 */
export interface ApiContext {
  redis: RedisClient;
  prefix: string;
  store: CallStore;
  /** The same producer the CLI and `import` use: validation, call records, idempotency keys, BullMQ jobs. */
  producer: CallProducer;
  /** The `calls` queue of each call shard, for the readiness check's worker list and call lookups. */
  calls: CallQueues;
  callIndex: CallCampaignIndex;
  idempotency: IdempotencyKeys;
  logger: Logger;
  clock: Clock;
  /** DIAL_TIME_ZONE: the zone schedule checks read times in (the API's own times always carry an offset). */
  timeZone: string;
  /** AGENT_PROFILES_FILE's catalog: campaigns and schedules naming an unknown profile are refused. */
  profiles: () => Promise<ProfileCatalog>;
  /** DIAL_DEFAULT_REGION: how schedules' numbers without a country code are checked. */
  defaultRegion: CountryCode | undefined;
}
