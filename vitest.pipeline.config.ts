import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * `npm run test:pipeline[:cluster|:sentinel]`: the dial pipeline's integration tests (issue 14's proof), in the Redis
 * topology TEST_REDIS_TOPOLOGY names: `single` (default), `cluster` (three masters) or `sentinel` (primary, replica,
 * three sentinels). globalSetup starts the topology once for the run and stops it by PID at the end; every process
 * and connection a test makes goes through the production connection factory with the topology's settings
 * (test/helpers/testRedis.ts, pipeline.ts). The files below make every connection that way; a consumer test that
 * talks to one node by URL (`new Redis(testRedisUrl())`) is not in the list until it does.
 */
export const PIPELINE_TEST_FILES = [
  'test/consumer/pipelineTopology.test.ts',
  'test/consumer/dialPipeline.test.ts',
  'test/consumer/neverRingsTwice.test.ts',
  'test/consumer/activeCallCap.test.ts',
  'test/consumer/activeCallGate.test.ts',
  'test/consumer/agentJoin.test.ts',
  'test/consumer/agentPresence.test.ts',
  'test/consumer/callWindow.test.ts',
  'test/consumer/campaignControls.test.ts',
  'test/consumer/dialLimits.test.ts',
  'test/consumer/dialRateLimiter.test.ts',
  'test/consumer/heldCalls.test.ts',
  'test/consumer/metrics.test.ts',
  'test/consumer/predialCheck.test.ts',
  'test/consumer/priority.test.ts',
  'test/consumer/profileGate.test.ts',
];

/**
 * Files at a time: fewer than `npm test`'s five. A topology adds three to five redis-servers to the two cores, and at
 * five files (load 9-13 with other work on the machine) the load-bound checks failed in every topology alike
 * (dialLimits' rate at 23 % of DIAL_CPS, a child consumer not started within 30 s).
 */
const PIPELINE_MAX_WORKERS = 3;

export default defineConfig({
  test: {
    ...base.test,
    include: PIPELINE_TEST_FILES,
    maxWorkers: PIPELINE_MAX_WORKERS,
  },
});
