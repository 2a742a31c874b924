// Whether the build in dist/ is current: made by scripts/build.mjs (its stamp, dist/.build-stamp, carries the build's
// start time) and no file under src/ is newer. bin/dialer.mjs runs dist/ only then, else the TypeScript through tsx;
// the test suite's consumer processes (test/fixtures/dialWorkerProcess.mjs) choose the same way.
import { existsSync, readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const stamp = new URL('dist/.build-stamp', root);

/** Newest modification time (ms) of the files under `dir`. */
function newestFile(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const mtime = statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs;
    if (mtime > newest) newest = mtime;
  }
  return newest;
}

/** Whether a build exists (dist/.build-stamp) and no file under src/ is newer; never true with DIALER_FROM_SOURCE=1. */
export function builtIsFresh() {
  if (process.env.DIALER_FROM_SOURCE === '1' || !existsSync(stamp)) return false;
  return newestFile(new URL('src/', root)) <= statSync(stamp).mtimeMs;
}

/** Whether dist/ was ever built (its stamp exists), fresh or not. */
export function builtOnce() {
  return existsSync(stamp);
}
