/** `dialer agent <dev|start>`, `dialer setup inbound` and `dialer setup outbound-trunk`, the SIP API ones against src/sim. */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DISPATCH_RULE_FILE, readDispatchRuleFile } from '../../src/agent/dispatchRule.js';
import { registerAgentCommands, type AgentCommandDeps } from '../../src/cli/agentCommands.js';
import type { CliContext } from '../../src/cli/cliContext.js';
import { loadConfig } from '../../src/core/config.js';
import { ConfigError, InvalidInputError } from '../../src/core/errors.js';
import { callShardsKey } from '../../src/core/callShards.js';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';
import { connectTestRedis, deleteKeysWithPrefix, testRedisEnv, uniquePrefix } from '../helpers/testRedis.js';
import { simClients } from './helpers.js';
import { runAgentStartUntilExit } from '../helpers/agentStart.js';

let sim: LiveKitSim;
/** How long a worker started with a mismatched CALL_SHARDS may run before the test stops it (it should exit at once). */
const UNCHECKED_WORKER_STOP_MS = 20_000;

beforeAll(async () => {
  sim = await startLiveKitSim();
});

afterAll(async () => {
  await sim.close();
});

function contextFor(extra: Record<string, string> = {}): () => CliContext {
  const config = loadConfig({ LIVEKIT_URL: sim.url, LIVEKIT_API_KEY: sim.apiKey, LIVEKIT_API_SECRET: sim.apiSecret, ...extra });
  return () => ({ config, logger: pino({ level: 'silent' }) });
}

async function runCli(argv: string[], deps: Partial<AgentCommandDeps> = {}): Promise<string[]> {
  const lines: string[] = [];
  const program = new Command('dialer').exitOverride();
  registerAgentCommands(program, {
    context: contextFor({ AGENT_NAME: 'inbound-agent' }),
    out: (line) => lines.push(line),
    fail: (err) => {
      throw err;
    },
    ...deps,
  });
  await program.parseAsync(['node', 'dialer', ...argv]);
  return lines;
}

describe('setup inbound', () => {
  it('creates the shipped individual dispatch rule (room prefix call-, dispatching AGENT_NAME) and prints its id', async () => {
    const [id] = await runCli(['setup', 'inbound']);
    expect(id).toMatch(/^SDR_/);
    const rules = await simClients(sim).sip.listSipDispatchRule();
    const rule = rules.find((r) => r.sipDispatchRuleId === id);
    expect(rule?.rule?.rule.case).toBe('dispatchRuleIndividual');
    expect(rule?.rule?.rule.value).toMatchObject({ roomPrefix: 'call-' });
    expect(rule?.roomConfig?.agents.map((a) => a.agentName)).toEqual(['inbound-agent']);
    expect(rule?.roomConfig?.agents[0]?.metadata).toContain('support-line');
  });

  it('the shipped dispatch-rule.json is the lk CLI format with an individual rule', async () => {
    const file = await readDispatchRuleFile(DEFAULT_DISPATCH_RULE_FILE);
    expect(file.dispatch_rule.rule.dispatchRuleIndividual.roomPrefix).toBe('call-');
    expect(file.dispatch_rule.roomConfig.agents[0]?.agentName).toBe('telephony-agent');
    await expect(readDispatchRuleFile(fileURLToPath(new URL('../../package.json', import.meta.url)))).rejects.toThrow(InvalidInputError);
  });
});

describe('setup outbound-trunk', () => {
  it('creates the trunk and prints the id to put in SIP_OUTBOUND_TRUNK_ID', async () => {
    const [id] = await runCli(['setup', 'outbound-trunk', '--address', 'example.pstn.twilio.com', '--number', '+12025550199', '--transport', 'tcp']);
    expect(id).toMatch(/^ST_/);
    const trunks = await simClients(sim).sip.listSipOutboundTrunk();
    expect(trunks.find((t) => t.sipTrunkId === id)).toMatchObject({ address: 'example.pstn.twilio.com', numbers: ['+12025550199'], name: 'dialer-outbound' });
  });

  it('rejects an unknown transport', async () => {
    await expect(runCli(['setup', 'outbound-trunk', '--address', 'x.example.com', '--number', '+12025550199', '--transport', 'carrier-pigeon'])).rejects.toThrow(
      /--transport must be one of/,
    );
  });
});

describe('agent <dev|start>', () => {
  it('runs the agents-js worker in the given mode with the extra options', async () => {
    const runs: [string, readonly string[]][] = [];
    const previous = process.env.OPENAI_API_KEY;
    process.env.OPENAI_API_KEY = 'k';
    try {
      await runCli(['agent', 'dev', '--', '--log-level', 'debug'], {
        runWorker: async (mode, args) => {
          runs.push([mode, args]);
          return 0;
        },
      });
    } finally {
      if (previous === undefined) delete process.env.OPENAI_API_KEY;
      else process.env.OPENAI_API_KEY = previous;
    }
    expect(runs).toEqual([['dev', ['--log-level', 'debug']]]);
  });

  it('refuses an unknown mode and missing settings before starting anything', async () => {
    const runWorker = async () => 0;
    await expect(runCli(['agent', 'console'], { runWorker })).rejects.toThrow(InvalidInputError);
    const previous = process.env.OPENAI_API_KEY;
    delete process.env.OPENAI_API_KEY;
    try {
      await expect(runCli(['agent', 'start'], { runWorker })).rejects.toThrow(ConfigError);
    } finally {
      if (previous !== undefined) process.env.OPENAI_API_KEY = previous;
    }
  });

  it('src/agent/main.ts exits 2 naming the missing variable instead of registering', async () => {
    const require = createRequire(import.meta.url);
    const main = fileURLToPath(new URL('../../src/agent/main.ts', import.meta.url));
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LIVEKIT_') && !key.startsWith('OPENAI_')));
    const child = spawn(process.execPath, [require.resolve('tsx/cli'), main, 'start'], { cwd: tmpdir(), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('LIVEKIT_URL is not set');
  });

  it('src/agent/main.ts exits 2 before registering when CALL_SHARDS differs from the count the calls were set up with', { timeout: 2 * UNCHECKED_WORKER_STOP_MS }, async () => {
    const prefix = uniquePrefix('agent-shards');
    const redis = connectTestRedis();
    try {
      await redis.set(callShardsKey(prefix), '3');
      const env = {
        ...process.env,
        ...testRedisEnv(),
        QUEUE_PREFIX: prefix,
        CALL_SHARDS: '2',
        LIVEKIT_URL: sim.url,
        LIVEKIT_API_KEY: sim.apiKey,
        LIVEKIT_API_SECRET: sim.apiSecret,
        OPENAI_API_KEY: 'test-key',
        LOG_LEVEL: 'error',
      };
      // a worker that does not check registers and runs on: stopped after this long, and the test fails
      const { code, stderr } = await runAgentStartUntilExit(env, UNCHECKED_WORKER_STOP_MS);
      expect(code, stderr).toBe(2);
      expect(stderr).toContain(`CALL_SHARDS is 2 but the calls under QUEUE_PREFIX=${prefix} were set up with 3 shards`);
      expect(sim.agentWorkers()).toEqual([]);
    } finally {
      await deleteKeysWithPrefix(redis, prefix);
      await redis.quit();
    }
  });
});
