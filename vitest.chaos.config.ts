import { defineConfig } from 'vitest/config';

/**
 * `npm run test:chaos`: the chaos campaign (test/chaos/campaign.chaos.ts), alone. It starts its own redis-server,
 * simulator and consumer processes and loads both cores for about three minutes, so it stays out of `npm test`
 * (whose timing tests it would disturb) and runs after it in CI.
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    testTimeout: 420_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
