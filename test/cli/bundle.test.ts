/**
 * The bundled command line (scripts/build.mjs → dist/cli-bundle/, what bin/dialer.mjs runs after `npm ci`): every
 * command family still loads, the files our modules find beside themselves (Lua scripts, the agent's entry point) are
 * found from the bundle, and commands do their work. The build tested is dist/ itself when it was built from the
 * sources, settings, build script and lock as they are now (`npm test` builds it first; the build records the hash of
 * those inputs), else one the test builds beside dist/ (never over it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapBounded } from '../helpers/mapBounded.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILD_SCRIPT = `${ROOT}scripts/build.mjs`;
/** Beside dist/ (same depth, so `../profiles` and the like resolve as from dist/), and git-ignored (dist.build-*). */
const OWN_BUILD = `${ROOT}dist.build-test-${process.pid}`;
const url = testRedisUrl();
const prefix = uniquePrefix('bundle-cli');
/** tsc and esbuild on a loaded 2-core machine. */
const BUILD_TIMEOUT_MS = 240_000;
const CLI_TEST_TIMEOUT_MS = 120_000;
/** `<command> --help` processes run at once: each is mostly node's start-up, on a 2-core machine shared with other tests. */
const HELP_CONCURRENCY = 4;

/** dist/ when its recorded build inputs are today's (scripts/build.mjs --inputs-hash), else undefined. */
function currentDist(): string | undefined {
  const recorded = `${ROOT}dist/.build-inputs`;
  if (!existsSync(recorded)) return undefined;
  const now = spawnSync(process.execPath, [BUILD_SCRIPT, '--inputs-hash'], { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
  return now.status === 0 && now.stdout.trim() === readFileSync(recorded, 'utf8').trim() ? `${ROOT}dist` : undefined;
}

/** The build under test: dist/ when current, else one built now beside it (removed in afterAll); set in beforeAll. */
let buildDir = OWN_BUILD;
let bundleMain = `${buildDir}/cli-bundle/main.js`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bundled(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundleMain, ...args], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: url, QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(() => {
  const reused = currentDist();
  if (reused !== undefined) {
    buildDir = reused;
  } else {
    const built = spawnSync(process.execPath, [BUILD_SCRIPT, '--out', OWN_BUILD], { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
    expect(built.status, built.stderr).toBe(0);
  }
  bundleMain = `${buildDir}/cli-bundle/main.js`;
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await rm(OWN_BUILD, { recursive: true, force: true });
  await deleteKeysWithPrefix(url, prefix);
});

describe('the bundled command line', () => {
  it('is a few files: bullmq, ioredis, zod and libphonenumber-js are inside, agents-js and the LiveKit SDK are not', () => {
    const files = readdirSync(`${buildDir}/cli-bundle`);
    expect(files.length).toBeLessThan(60);
    const code = files.map((f) => readFileSync(`${buildDir}/cli-bundle/${f}`, 'utf8')).join('\n');
    for (const inside of ['node_modules/bullmq/', 'node_modules/ioredis/', 'node_modules/zod/', 'node_modules/libphonenumber-js/']) {
      expect(code).toContain(`// ${inside}`);
    }
    expect(code).not.toMatch(/from ["']bullmq["']|from ["']zod["']/);
    expect(code).toMatch(/from ["']livekit-server-sdk["']/); // left outside, imported from node_modules
    expect(code).not.toMatch(/\/\/ node_modules\/@livekit\/agents\//);
  });

  it(
    'enqueues a call and imports a CSV (the records come from createCalls.lua, found from the bundle)',
    async () => {
      const enqueued = await bundled(['enqueue', '+1 650 555 0100 x12', '--campaign', 'bundled']);
      expect(enqueued, enqueued.stderr).toMatchObject({ code: 0 });
      const callId = enqueued.stdout.trim();
      const csv = `${OWN_BUILD}.csv`;
      await writeFile(csv, 'phone_number,name\n+14155550101,Ada\n+14155550102,Bob\n');
      try {
        const imported = await bundled(['import', csv, '--campaign', 'bundled']);
        expect(imported, imported.stderr).toMatchObject({ code: 0 });
        expect(imported.stdout).toContain('enqueued: 2');
      } finally {
        await rm(csv, { force: true });
      }
      const shown = await bundled(['call', callId]);
      expect(shown.stdout).toContain('+16505550100');
      const redis = new Redis(url, { maxRetriesPerRequest: 1 });
      try {
        expect(await redis.hget(`${prefix}:dialer:{bundled}:counters`, 'total')).toBe('3');
      } finally {
        await redis.quit();
      }
    },
    CLI_TEST_TIMEOUT_MS,
  );

  it(
    'loads every command family: help lists them, the consumer reads its Lua, the demo and agent resolve their files',
    async () => {
      const help = await bundled(['--help']);
      for (const command of ['enqueue', 'import', 'consumer', 'serve', 'report', 'demo', 'agent']) expect(help.stdout).toContain(command);
      // each `<command> --help` imports that command's module (and the modules it reads at load, e.g. Lua scripts)
      // the demo first: it loads agents-js, the slowest by far (2.5 s against 0.4-1.2 s)
      const commands = ['demo', 'consumer', 'results', 'serve', 'report', 'call', 'campaigns', 'cancel', 'purge', 'agent', 'setup'];
      const runs = await mapBounded(commands, HELP_CONCURRENCY, (command) => bundled([command, '--help']));
      commands.forEach((command, i) => expect({ command, code: runs[i]?.code, stderr: runs[i]?.stderr }).toEqual({ command, code: 0, stderr: '' }));
      // the demo runs from its unbundled module in dist/ (agents-js and our tool schemas share one zod)
      expect(readFileSync(bundleMain, 'utf8')).toContain('import("../cli/demoCommand.js")');
      // the agent worker is started from dist/agent/main.js: the bundle's agent command resolves paths from its twin
      // in dist/cli/ (import.meta.url rewritten), so `../agent/main.js` names that file
      const agentChunk = readdirSync(`${buildDir}/cli-bundle`).find((f) => f.startsWith('agentCommands-'));
      expect(readFileSync(`${buildDir}/cli-bundle/${agentChunk ?? 'missing'}`, 'utf8')).toContain('new URL("../cli/agentCommands.js", import.meta.url)');
      expect(existsSync(`${buildDir}/agent/main.js`)).toBe(true);
    },
    CLI_TEST_TIMEOUT_MS,
  );

  it(
    'refuses bad input with the same line and exit code as the unbundled command',
    async () => {
      const run = await bundled(['enqueue', '(415) 555-0125']);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^dialer: not a valid phone number: "\(415\) 555-0125" \(no country code/);
    },
    CLI_TEST_TIMEOUT_MS,
  );
});
