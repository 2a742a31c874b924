// Copies each test file's last duration from vitest's results cache into test/sequencing/fileDurations.json, which
// DurationSequencer reads where the cache is missing (a fresh clone). Run after a full `npm test`:
//   npm run test:durations
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FILE_DURATIONS_PATH } from './durationSequencer.js';

const cacheRoot = fileURLToPath(new URL('../../node_modules/.vite/vitest/', import.meta.url));
/** vitest 4's results.json: `[project:file, {duration, failed}]` pairs. */
const resultsSchema = z.object({ results: z.array(z.tuple([z.string(), z.object({ duration: z.number().optional() })])) });

const durations: Record<string, number> = {};
for (const dir of readdirSync(cacheRoot)) {
  const { results } = resultsSchema.parse(JSON.parse(readFileSync(`${cacheRoot}${dir}/results.json`, 'utf8')));
  for (const [key, { duration }] of results) {
    const file = key.slice(key.indexOf(':') + 1);
    if (duration !== undefined && file.startsWith('test/')) durations[file] = Math.round(duration);
  }
}
const sorted = Object.fromEntries(Object.entries(durations).sort(([a], [b]) => a.localeCompare(b)));
writeFileSync(FILE_DURATIONS_PATH, `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`${Object.keys(sorted).length} file durations written to ${fileURLToPath(FILE_DURATIONS_PATH)}`);
