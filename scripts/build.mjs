#!/usr/bin/env node
// Compiles src/ to dist/ (git-ignored) once, so the `dialer` command starts without compiling TypeScript. `npm ci`
// and `npm install` run it as `prepare`; run it again with `npm run build` after editing src/ (bin/dialer.mjs falls
// back to tsx while dist/ is older than src/). Transpiles only (`tsc --noCheck`): `npm run typecheck` checks types.
// Without TypeScript installed (`npm ci --omit=dev`) it builds nothing and the command runs through tsx.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const startedAt = new Date();
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  process.stderr.write('dialer build skipped: typescript is not installed; the dialer command will run the TypeScript through tsx\n');
  process.exit(0);
}

// built beside dist/ and moved into place at the end, so a dialer starting meanwhile never sees half a build
const staging = join(root, `dist.build-${process.pid}`);
rmSync(staging, { recursive: true, force: true });
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--noCheck', '--outDir', staging], { stdio: 'inherit' });
if (compiled.status !== 0) {
  rmSync(staging, { recursive: true, force: true });
  process.stderr.write(`dialer build failed (tsc exit ${compiled.status ?? compiled.signal})\n`);
  process.exit(1);
}
// files the code reads beside itself (Lua scripts)
const src = join(root, 'src');
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.lua')) continue;
  const from = join(entry.parentPath, entry.name);
  const to = join(staging, relative(src, from));
  mkdirSync(dirname(to), { recursive: true });
  cpSync(from, to);
}
// the stamp carries the build's start time: a file edited while tsc ran is newer, so the build counts as stale
const stamp = join(staging, '.build-stamp');
writeFileSync(stamp, `${startedAt.toISOString()}\n`);
utimesSync(stamp, startedAt, startedAt);
const dist = join(root, 'dist');
if (existsSync(dist)) rmSync(dist, { recursive: true, force: true });
renameSync(staging, dist);
