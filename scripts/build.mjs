#!/usr/bin/env node
// Compiles src/ to dist/ (git-ignored) once, so the `dialer` command starts without compiling TypeScript. `npm ci`
// and `npm install` run it as `prepare`; run it again with `npm run build` after editing src/ (bin/dialer.mjs falls
// back to tsx while dist/ is older than src/). Transpiles only (`tsc --noCheck`): `npm run typecheck` checks types.
// Without TypeScript installed (`npm ci --omit=dev`) it builds nothing and the command runs through tsx.
//
// Then it bundles the command line (dist/cli/main.js and the command modules it imports lazily) with esbuild into
// dist/cli-bundle/: `dialer enqueue` otherwise spends most of its start-up resolving and compiling several hundred ES
// and CommonJS modules of bullmq, ioredis, zod and libphonenumber-js. bin/dialer.mjs runs the bundle when it is
// there, else dist/cli/main.js. EXTERNAL_PACKAGES and UNBUNDLED_COMMAND_MODULES say what stays outside, and why.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInputsHash, builtIsComplete, recordedInputsHash } from '../bin/buildFreshness.mjs';

/**
 * Packages left outside the bundle, imported from node_modules as before: native or optional ones, ones that find
 * files of their own at run time (agents-js starts its job processes from its own files), and the heavy ones only
 * the long-running commands (consumer, serve, agent) load, whose start-up does not matter.
 */
const EXTERNAL_PACKAGES = ['@livekit/', 'livekit-server-sdk', '@bufbuild/', 'fastify', '@fastify/', '@bull-board/', 'pg', '@valkey/', 'tsx', 'esbuild'];
/**
 * Command modules that run agents-js in the dialer process (the demo's simulated agent): they stay unbundled, as
 * dist/cli/ has them, so agents-js and our tool schemas share node_modules' one copy of zod. The build fails when a
 * bundled module imports agents-js, naming the module to add here.
 */
const UNBUNDLED_COMMAND_MODULES = ['./demoCommand.js'];

const isExternalPackage = (specifier) => EXTERNAL_PACKAGES.some((p) => (p.endsWith('/') ? specifier.startsWith(p) : specifier === p || specifier.startsWith(`${p}/`)));

const root = fileURLToPath(new URL('../', import.meta.url));
const startedAt = new Date();

// What a build is made from (buildInputsHash) and when one is whole: bin/buildFreshness.mjs, shared with the `dialer`
// command and the tests.
if (process.argv.includes('--inputs-hash')) {
  process.stdout.write(`${buildInputsHash()}\n`);
  process.exit(0);
}
// taken before tsc reads the sources: a file edited while the build runs makes the build's hash disagree with src/
const inputs = buildInputsHash();
const outFlag = process.argv.indexOf('--out');
const dist = outFlag === -1 ? join(root, 'dist') : resolve(process.argv[outFlag + 1] ?? 'dist');

// `npm test` builds first (pretest), usually right after `npm ci` built the same sources: a whole dist/ built from
// today's inputs is kept (6 s saved per run). Its stamp is moved to now, because bin/dialer.mjs judges freshness by
// mtimes and a checkout can touch files without changing them. `--force` builds anyway.
if (!process.argv.includes('--force') && recordedInputsHash(dist) === inputs && builtIsComplete(dist, esbuildInstalled())) {
  utimesSync(join(dist, '.build-stamp'), startedAt, startedAt);
  process.stderr.write('dialer build: dist/ is already built from these sources (--force to build again)\n');
  process.exit(0);
}
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  process.stderr.write('dialer build skipped: typescript is not installed; the dialer command will run the TypeScript through tsx\n');
  process.exit(0);
}

// `--out <dir>` (read above) builds elsewhere (test/cli/bundle.test.ts builds beside dist/, never over it)
// built beside the output and moved into place at the end, so a dialer starting meanwhile never sees half a build
const staging = `${dist}.build-${process.pid}`;
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
try {
  await bundleCli(staging);
} catch (err) {
  rmSync(staging, { recursive: true, force: true });
  process.stderr.write(`dialer build failed (bundling the command line): ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

// the stamp carries the build's start time: a file edited while tsc ran is newer, so the build counts as stale
const stamp = join(staging, '.build-stamp');
writeFileSync(stamp, `${startedAt.toISOString()}\n`);
utimesSync(stamp, startedAt, startedAt);
// Recorded only when the inputs did not change while tsc and esbuild read them: a build of half-edited sources must
// never be taken for today's (once the edit is undone, its hash would match again).
if (buildInputsHash() === inputs) writeFileSync(join(staging, '.build-inputs'), `${inputs}\n`);
else process.stderr.write('dialer build: sources changed while building; this build will not be reused (run the build again)\n');
// Swapped in by renames only: a dialer starting meanwhile finds the old build whole, no build (and runs the TypeScript),
// or the new one, never a half-deleted old one (`npm test` builds while other test runs may be starting commands).
const previous = `${staging}-previous`;
if (existsSync(dist)) renameSync(dist, previous);
renameSync(staging, dist);
rmSync(previous, { recursive: true, force: true });

/** Whether esbuild can be loaded, i.e. whether a build bundles the command line. */
function esbuildInstalled() {
  try {
    createRequire(import.meta.url).resolve('esbuild');
    return true;
  } catch {
    return false;
  }
}

/** Bundles `${built}/cli/main.js` into `${built}/cli-bundle/`; skipped (with a note) when esbuild is not installed. */
async function bundleCli(built) {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    process.stderr.write('dialer build: esbuild is not installed; the command runs the unbundled build (slower start)\n');
    return;
  }
  const outdir = join(built, 'cli-bundle');
  const result = await esbuild.build({
    entryPoints: [join(built, 'cli', 'main.js')],
    bundle: true,
    splitting: true, // each command's modules stay a chunk of their own, loaded only when that command runs
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outdir,
    // flat: every output file sits in cli-bundle/, one level below dist/, which the import.meta.url rewrite relies on
    entryNames: '[name]',
    chunkNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
    // bundled CommonJS packages require() Node's built-ins and the packages left outside
    banner: { js: "import { createRequire as __dialerCreateRequire } from 'node:module'; const require = __dialerCreateRequire(import.meta.url);" },
    plugins: [
      {
        name: 'dialer',
        setup(build) {
          build.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('node:') || isExternalPackage(args.path) ? { external: true } : undefined));
          // imported by the command catalog, whichever module of dist/cli/ holds it: loaded from there, unbundled
          build.onResolve({ filter: /^\.\/[A-Za-z]+Command\.js$/ }, (args) =>
            UNBUNDLED_COMMAND_MODULES.includes(args.path) && dirname(args.importer) === join(built, 'cli') ? { path: `../cli/${args.path.slice(2)}`, external: true } : undefined,
          );
          // Our modules find files beside themselves (Lua scripts, profiles.json, the agent's entry point) through
          // import.meta.url; in the bundle that would name the chunk. Each module's import.meta.url is made the URL
          // of its unbundled twin in dist/, where those relative paths hold (the build copies the Lua files there).
          build.onLoad({ filter: /\.js$/ }, (args) => {
            if (!args.path.startsWith(built + sep) || args.path.startsWith(outdir + sep)) return undefined;
            const text = readFileSync(args.path, 'utf8');
            if (!text.includes('import.meta.url')) return undefined;
            const twin = JSON.stringify(relative(outdir, args.path).split(sep).join('/'));
            return { contents: text.replaceAll('import.meta.url', `new URL(${twin}, import.meta.url).href`), loader: 'js' };
          });
        },
      },
    ],
  });
  for (const [file, output] of Object.entries(result.metafile.outputs)) {
    const agents = output.imports.find((i) => i.external && /^@livekit\/(agents|rtc-node)/.test(i.path));
    if (agents) throw new Error(`${file} (bundled) imports ${agents.path}: list its command module in UNBUNDLED_COMMAND_MODULES`);
  }
}
