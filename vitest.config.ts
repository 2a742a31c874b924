import { defineConfig } from 'vitest/config';
import { DurationSequencer } from './test/sequencing/durationSequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Most test time is waiting (simulated rings, retries, other processes), not computing: four files at a time on
    // two cores took a set of 40 files from 126 s to 45 s (load 8-12). Five took the full run (103 files) from 103 s
    // to 78-83 s (two runs, load about 6; 1 December 2026); six took it to 73-80 s but starved the in-process
    // consumers of dialLimits' rate check (49 % of DIAL_CPS, the test asks 75 %). That check now judges the rate on the
    // time its process was not stalled (1f3c8bc), and six took the run (119 files) from 98 s to 84-89 s (2 December).
    maxWorkers: 6,
    fileParallelism: true,
    // A worker keeps the modules it loaded for its next file instead of loading them again for each: half the CPU
    // (the same 40 files: 18 s of CPU instead of 33-36 s). Test files must leave process-wide state (process.env,
    // fake timers, process.exit) as they found it; each file still has its own prefix in Redis.
    isolate: false,
    // Longest files first, also in a fresh clone, which has no vitest results cache (test/sequencing).
    sequence: { sequencer: DurationSequencer },
  },
});
