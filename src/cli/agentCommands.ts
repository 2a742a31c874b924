import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SIPTransport } from '@livekit/protocol';
import type { Command } from 'commander';
import { loadAgentSettings, requireOpenAIKey } from '../agent/agentConfig.js';
import { DEFAULT_DISPATCH_RULE_FILE, createInboundDispatchRule, readDispatchRuleFile } from '../agent/dispatchRule.js';
import { requireLiveKit, type LiveKitSettings } from '../core/config.js';
import { ConfigError, InvalidInputError } from '../core/errors.js';
import { createLiveKitClients, type LiveKitClients } from '../core/livekitClients.js';
import { cliContext, exitWithError, type CliContext } from './cliContext.js';

const AGENT_MAIN = fileURLToPath(new URL('../agent/main.ts', import.meta.url));
const WORKER_MODES = ['dev', 'start'] as const;
type WorkerMode = (typeof WORKER_MODES)[number];

export interface AgentCommandDeps {
  /** Settings and logger (default: `.env` + environment, validated). */
  context?: () => CliContext;
  /** SIP API client factory (default: the LiveKit clients with region failover off). */
  createClients?: (settings: LiveKitSettings) => Pick<LiveKitClients, 'sip'>;
  /** Command output (default: stdout). */
  out?: (line: string) => void;
  /** Runs the agents-js worker; resolves with its exit code (default: `tsx src/agent/main.ts <mode>` as a child). */
  runWorker?: (mode: WorkerMode, args: readonly string[]) => Promise<number>;
  /** What a failed command does (default: one line on stderr and the matching exit code). */
  fail?: (err: unknown) => void;
}

const TRANSPORTS: Record<string, SIPTransport> = {
  auto: SIPTransport.SIP_TRANSPORT_AUTO,
  udp: SIPTransport.SIP_TRANSPORT_UDP,
  tcp: SIPTransport.SIP_TRANSPORT_TCP,
  tls: SIPTransport.SIP_TRANSPORT_TLS,
};

/**
 * Runs `node --import tsx src/agent/main.ts <mode> …` with this terminal, forwarding Ctrl-C and SIGTERM; resolves
 * with its exit code. tsx is a loader here, not a launcher process, so signals reach the worker directly.
 */
function spawnWorker(mode: WorkerMode, args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), AGENT_MAIN, mode, ...args], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => () => {
    if (child.exitCode === null) child.kill(signal);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

/**
 * `dialer agent <dev|start>` runs the voice agent worker (agents-js cli), and `dialer setup inbound` /
 * `dialer setup outbound-trunk` create the SIP dispatch rule and outbound trunk through the SIP API, printing their ids.
 */
export function registerAgentCommands(program: Command, deps: AgentCommandDeps = {}): void {
  const context = deps.context ?? cliContext;
  const out = deps.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const fail = deps.fail ?? exitWithError;
  const clientsFor = (ctx: CliContext) => (deps.createClients ?? createLiveKitClients)(requireLiveKit(ctx.config));
  const guarded =
    <A extends unknown[]>(body: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await body(...args);
      } catch (err) {
        fail(err);
      }
    };

  program
    .command('agent')
    .description('run the voice agent worker (LiveKit Agents): "dev" for development, "start" for production')
    .argument('<mode>', 'dev | start')
    .argument('[args...]', 'more agents-js cli options, after "--" (e.g. -- --log-level debug)')
    .action(
      guarded(async (mode: string, args: string[]) => {
        if (!(WORKER_MODES as readonly string[]).includes(mode)) {
          throw new InvalidInputError(`agent mode must be "dev" or "start", not "${mode}"`);
        }
        const ctx = context();
        requireLiveKit(ctx.config);
        requireOpenAIKey(loadAgentSettings().models);
        const code = await (deps.runWorker ?? spawnWorker)(mode as WorkerMode, args);
        if (code !== 0) process.exitCode = code;
      }),
    );

  const setup = program.command('setup').description('create LiveKit SIP resources for the dialer');

  setup
    .command('inbound')
    .description(`create the inbound dispatch rule (individual rooms "call-…" dispatching AGENT_NAME) from ${'dispatch-rule.json'}`)
    .option('--file <path>', 'dispatch rule JSON', DEFAULT_DISPATCH_RULE_FILE)
    .option('--trunk <id...>', 'inbound trunk ids the rule applies to (default: the file\'s, else every trunk)')
    .action(
      guarded(async (options: { file: string; trunk?: string[] }) => {
        const ctx = context();
        const file = await readDispatchRuleFile(options.file);
        const created = await createInboundDispatchRule(clientsFor(ctx).sip, file, ctx.config.agentName, options.trunk);
        ctx.logger.info({ dispatchRuleId: created.sipDispatchRuleId, agentName: ctx.config.agentName }, 'dispatch rule created');
        out(created.sipDispatchRuleId);
      }),
    );

  setup
    .command('outbound-trunk')
    .description('create the outbound SIP trunk calls are placed through; set SIP_OUTBOUND_TRUNK_ID to the id it prints')
    .requiredOption('--address <host>', "the SIP provider's address, e.g. my-trunk.pstn.twilio.com")
    .requiredOption('--number <e164...>', 'caller number(s) of the trunk')
    .option('--name <name>', 'trunk name', 'dialer-outbound')
    .option('--transport <transport>', 'auto | udp | tcp | tls', 'auto')
    .option('--auth-username <user>', 'digest auth user (password from SIP_TRUNK_AUTH_PASSWORD)')
    .action(
      guarded(async (options: { address: string; number: string[]; name: string; transport: string; authUsername?: string }) => {
        const ctx = context();
        const transport = TRANSPORTS[options.transport];
        if (transport === undefined) throw new InvalidInputError(`--transport must be one of ${Object.keys(TRANSPORTS).join(', ')}`);
        const password = process.env.SIP_TRUNK_AUTH_PASSWORD;
        if (options.authUsername && !password) throw new ConfigError('SIP_TRUNK_AUTH_PASSWORD is not set (needed with --auth-username)');
        const trunk = await clientsFor(ctx).sip.createSipOutboundTrunk(options.name, options.address, options.number, {
          transport,
          authUsername: options.authUsername,
          authPassword: options.authUsername ? password : undefined,
        });
        ctx.logger.info({ trunkId: trunk.sipTrunkId }, 'outbound trunk created');
        out(trunk.sipTrunkId);
      }),
    );
}
