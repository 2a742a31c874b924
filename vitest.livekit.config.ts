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
  },
});
