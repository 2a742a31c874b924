/**
 * The bundled command line (scripts/build.mjs → dist/cli-bundle/, what bin/dialer.mjs runs after `npm ci`), built
 * here beside dist/ (never over it): every command family still loads, the files our modules find beside themselves
 * (Lua scripts, the agent's entry point) are found from the bundle, and commands do their work.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Beside dist/ (same depth, so `../profiles` and the like resolve as from dist/), and git-ignored (dist.build-*). */
const OUT = `${ROOT}dist.build-test-${process.pid}`;
const BUNDLE_MAIN = `${OUT}/cli-bundle/main.js`;
const url = testRedisUrl();
const prefix = uniquePrefix('bundle-cli');
/** tsc and esbuild on a loaded 2-core machine. */
const BUILD_TIMEOUT_MS = 240_000;
const CLI_TEST_TIMEOUT_MS = 120_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bundled(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE_MAIN, ...args], {
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
  const built = spawnSync(process.execPath, [`${ROOT}scripts/build.mjs`, '--out', OUT], { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
  expect(built.status, built.stderr).toBe(0);
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await deleteKeysWithPrefix(url, prefix);
});

describe('the bundled command line', () => {
  it('is a few files: bullmq, ioredis, zod and libphonenumber-js are inside, agents-js and the LiveKit SDK are not', () => {
    const files = readdirSync(`${OUT}/cli-bundle`);
    expect(files.length).toBeLessThan(60);
    const code = files.map((f) => readFileSync(`${OUT}/cli-bundle/${f}`, 'utf8')).join('\n');
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
      const csv = `${OUT}.csv`;
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
      for (const command of ['consumer', 'results', 'serve', 'report', 'call', 'campaigns', 'cancel', 'purge', 'demo', 'agent', 'setup']) {
        const run = await bundled([command, '--help']);
        expect({ command, code: run.code, stderr: run.stderr }).toEqual({ command, code: 0, stderr: '' });
      }
      // the demo runs from its unbundled module in dist/ (agents-js and our tool schemas share one zod)
      expect(readFileSync(BUNDLE_MAIN, 'utf8')).toContain('import("../cli/demoCommand.js")');
      // the agent worker is started from dist/agent/main.js: the bundle's agent command resolves paths from its twin
      // in dist/cli/ (import.meta.url rewritten), so `../agent/main.js` names that file
      const agentChunk = readdirSync(`${OUT}/cli-bundle`).find((f) => f.startsWith('agentCommands-'));
      expect(readFileSync(`${OUT}/cli-bundle/${agentChunk ?? 'missing'}`, 'utf8')).toContain('new URL("../cli/agentCommands.js", import.meta.url)');
      expect(existsSync(`${OUT}/agent/main.js`)).toBe(true);
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
