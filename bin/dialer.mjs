#!/usr/bin/env node
// The `dialer` command. It runs the JavaScript built at install (`npm ci` runs `npm run build` as `prepare`, into the
// git-ignored dist/; the command line bundled into dist/cli-bundle/), in this process, so it starts at once and signals (a container's SIGTERM included) reach the
// CLI itself, which drains on the first. When dist/ is missing or older than a file in src/ (an edit since the last
// build, a checkout), it runs the TypeScript through tsx instead: slower to start, never stale.
import { existsSync } from 'node:fs';
import { builtIsFresh, builtOnce } from './buildFreshness.mjs';

const root = new URL('../', import.meta.url);

// the bundle (scripts/build.mjs) when the build made one: the same code, in a few files instead of hundreds
const bundle = new URL('dist/cli-bundle/main.js', root);
const built = existsSync(bundle) ? bundle : new URL('dist/cli/main.js', root);

if (builtIsFresh() && existsSync(built)) {
  await import(built.href);
} else {
  if (process.stderr.isTTY && builtOnce()) {
    process.stderr.write('dialer: src/ changed since the last build; running the TypeScript (slower start). `npm run build` makes it fast again.\n');
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('src/cli/main.ts', root).href);
}
