import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SIPTransport } from '@livekit/protocol';
import type { Command } from 'commander';
import { loadAgentSettings, requireOpenAIKey } from '../agent/agentConfig.js';
import { DEFAULT_DISPATCH_RULE_FILE, createInboundDispatchRule, readDispatchRuleFile } from '../agent/dispatchRule.js';
import { requireLiveKit, type LiveKitSettings } from '../core/config.js';
import { ConfigError, InvalidInputError } from '../core/errors.js';
import { createLiveKitClients, type LiveKitClients } from '../core/livekitClients.js';
import { DUPLICATE_SIGNAL_WINDOW_MS } from '../core/shutdownSignals.js';
import { cliContext, exitWithError, type CliContext } from './cliContext.js';

/** Built (dist/, plain JavaScript) or run from source through tsx: the worker is started the same way. */
const BUILT = import.meta.url.endsWith('.js');
const AGENT_MAIN = fileURLToPath(new URL(BUILT ? '../agent/main.js' : '../agent/main.ts', import.meta.url));
const PARENT_WATCH = new URL(BUILT ? './parentWatch.js' : './parentWatch.ts', import.meta.url).href;
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
 * Runs the agents-js worker (`node [--import tsx] agent/main <mode> …`, output to this terminal) and resolves with its
 * exit code. agents-js force-exits on a second SIGINT ("Force exit (Ctrl+C pressed twice)", node_modules/@livekit/
 * agents dist/cli.js runServer), and one Ctrl-C arrives several times: the terminal signals the whole foreground
 * process group, and `npm run` forwards its own copy. So the worker runs in a process group of its own, where the
 * terminal's signal does not reach it, and this process forwards each stop request exactly once: copies within
 * DUPLICATE_SIGNAL_WINDOW_MS are dropped, a Ctrl-C pressed again later is forwarded and forces the stop as agents-js
 * intends. SIGHUP (the terminal closed) is passed on as SIGTERM. parentWatch stops the worker if this process dies.
 */
function spawnWorker(mode: WorkerMode, args: readonly string[]): Promise<number> {
  const loader = BUILT ? [] : ['--import', import.meta.resolve('tsx')];
  const child = spawn(process.execPath, [...loader, '--import', PARENT_WATCH, AGENT_MAIN, mode, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  let lastForwarded = 0;
  const forward = (signal: NodeJS.Signals) => () => {
    const now = Date.now();
    if (child.exitCode !== null || now - lastForwarded < DUPLICATE_SIGNAL_WINDOW_MS) return;
    lastForwarded = now;
    child.kill(signal);
  };
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', forward('SIGINT')],
    ['SIGTERM', forward('SIGTERM')],
    ['SIGHUP', forward('SIGTERM')],
  ];
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const [name, handler] of handlers) process.off(name, handler);
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
