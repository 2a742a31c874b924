import { defineConfig } from 'vitest/config';

/**
 * `npm run test:chaos`: the chaos campaign (test/chaos/campaign.chaos.ts), alone. It starts its own redis-server,
 * simulator, API proxy and consumer processes and keeps both cores busy for three to four minutes (more when other
 * work loads them), so it stays out of `npm test` (whose timing tests it would disturb) and runs after it in CI.
 * Its instrument (test/chaos/chaosReport.test.ts) is an ordinary test and runs in `npm test`.
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    testTimeout: 420_000,
    hookTimeout: 240_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
