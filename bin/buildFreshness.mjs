// Whether the build in dist/ can be run instead of the TypeScript in src/. bin/dialer.mjs asks the quick question
// (builtIsFresh: no file under src/ newer than the build's stamp, so an edit since the build sends it to tsx);
// scripts/build.mjs, before keeping a build, and the test suite's consumer processes (test/fixtures/
// dialWorkerProcess.mjs) ask the exact one (builtFromCurrentSources: the build's recorded SHA-256 of its inputs is
// today's, and every module it should hold is there), which a file restored with an old modification time cannot fool.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const defaultDist = join(root, 'dist');

/** Newest modification time (ms) of the files under `dir`. */
function newestFile(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const mtime = statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs;
    if (mtime > newest) newest = mtime;
  }
  return newest;
}

/** Whether a build exists (dist/.build-stamp) and no file under src/ is newer; never true with DIALER_FROM_SOURCE=1. */
export function builtIsFresh() {
  const stamp = join(defaultDist, '.build-stamp');
  if (process.env.DIALER_FROM_SOURCE === '1' || !existsSync(stamp)) return false;
  return newestFile(join(root, 'src')) <= statSync(stamp).mtimeMs;
}

/** Whether dist/ was ever built (its stamp exists), fresh or not. */
export function builtOnce() {
  return existsSync(join(defaultDist, '.build-stamp'));
}

/** Files under src/, as paths relative to the repository with `/` separators. */
function sourceFiles() {
  const files = [];
  for (const entry of readdirSync(join(root, 'src'), { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.push(relative(root, join(entry.parentPath ?? entry.path, entry.name)).split(sep).join('/'));
  }
  return files;
}

/**
 * What a build is made from: every file under src/, the TypeScript settings, the build script, and the package manifest
 * and lock (the versions of TypeScript, esbuild and the bundled packages). Their SHA-256, path and content of each, is
 * written into the build (`.build-inputs`) and printed by `scripts/build.mjs --inputs-hash`.
 */
export function buildInputsHash() {
  const files = ['tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs', 'package.json', 'package-lock.json', ...sourceFiles()];
  const hash = createHash('sha256');
  for (const file of files.sort()) {
    const path = join(root, file);
    hash.update(`${file}\0`);
    hash.update(existsSync(path) ? readFileSync(path) : 'missing');
    hash.update('\0');
  }
  return hash.digest('hex');
}

/**
 * Whether `dist` holds a whole build: its stamp, a module for every TypeScript file under src/ and a copy of every Lua
 * script, and the bundled command line when `bundled` (scripts/build.mjs makes it when esbuild is installed).
 */
export function builtIsComplete(dist, bundled) {
  if (!existsSync(join(dist, '.build-stamp'))) return false;
  if (bundled && !existsSync(join(dist, 'cli-bundle', 'main.js'))) return false;
  for (const file of sourceFiles()) {
    const inSrc = file.slice('src/'.length);
    if (file.endsWith('.lua') && !existsSync(join(dist, inSrc))) return false;
    if (file.endsWith('.ts') && !file.endsWith('.d.ts') && !existsSync(join(dist, inSrc.replace(/\.ts$/, '.js')))) return false;
  }
  return true;
}

/** The SHA-256 of the inputs `dist` was built from (its `.build-inputs`), or undefined when it has none. */
export function recordedInputsHash(dist = defaultDist) {
  const file = join(dist, '.build-inputs');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/**
 * Whether dist/ was built from exactly today's inputs and is whole (the bundle is not required). Never true with
 * DIALER_FROM_SOURCE=1. Costs a read of every source file (tens of milliseconds).
 */
export function builtFromCurrentSources() {
  if (process.env.DIALER_FROM_SOURCE === '1') return false;
  return recordedInputsHash() === buildInputsHash() && builtIsComplete(defaultDist, false);
}
