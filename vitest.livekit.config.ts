import { defineConfig } from 'vitest/config';

/**
 * The real-LiveKit suite (issue 9): `npm run test:livekit`, which runs it inside a network namespace of its own
 * (scripts/livekit/test.sh). Its files end in `.livekit.ts`, so plain `npm test` never picks them up. One file at a
 * time: they share one livekit-server, one livekit-sip and the namespace's ports.
 */
export default defineConfig({
  test: {
    include: ['test/livekit/**/*.livekit.ts'],
    globalSetup: ['test/livekit/globalSetup.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
    fileParallelism: false,
    // Real audio through a real stack on a shared 2-core host: a scenario whose timing slipped (an agent job slow to
    // start, a briefing not heard within its wait) is run once more before the suite fails. A scenario that fails
    // twice fails the run.
    retry: 1,
  },
});
