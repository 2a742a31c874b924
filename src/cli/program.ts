/*
 * The `dialer` program: its commands and how a command line ends in an exit code. src/cli/main.ts runs it for the
 * process; tests run one-shot commands through runCommandLine in their own process.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_INVALID_INPUT, EXIT_OK, errorLine, exitCodeFor } from './exitCodes.js';

/** Adds a family of commands (and their options) to the program. */
type Register = (program: Command) => void;

/**
 * One top-level command: what `dialer --help` lists, and the module that defines it. Modules are imported only when
 * their command runs, so `dialer --help` loads commander alone and `dialer enqueue` never loads agents-js or the
 * LiveKit SDK.
 */
interface CommandEntry {
  name: string;
  /** Arguments as the list shows them, e.g. `<number>`. */
  args?: string;
  summary: string;
  load: () => Promise<Register>;
}

const producer = async () => (await import('./producerCommands.js')).registerProducerCommands;
const consumer = async () => (await import('./consumerCommands.js')).registerConsumerCommands;
const campaigns = async () => (await import('./campaignCommands.js')).registerCampaignCommands;
const agent = async () => (await import('./agentCommands.js')).registerAgentCommands;

/** Every top-level command, in the order `dialer --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'enqueue', args: '<number>', summary: 'enqueue one call; prints its call id', load: producer },
  { name: 'import', args: '<file>', summary: 'enqueue every row of a CSV file', load: producer },
  { name: 'consumer', summary: 'dial calls from the queue and apply results (SIGTERM/SIGINT drain)', load: consumer },
  { name: 'results', summary: 'apply call results to records and campaign counters', load: consumer },
  { name: 'serve', summary: 'HTTP API for other services on API_HOST:API_PORT (tokens from API_TOKENS)', load: async () => (await import('./serveCommand.js')).registerServeCommand },
  { name: 'campaigns', summary: 'list campaigns with their calls, pending calls and state', load: async () => (await import('./callCommand.js')).registerCampaignsCommand },
  { name: 'report', summary: 'show a campaign: totals by outcome and each call (--json, --csv, --html page, --watch live)', load: async () => (await import('./reportCommand.js')).registerReportCommand },
  { name: 'call', args: '<callId>', summary: 'show one call: number, attempts, outcome, transcript, summary', load: async () => (await import('./callCommand.js')).registerCallCommand },
  { name: 'campaign', args: '<action>', summary: 'campaign objects: create, list, show, update, pause, resume, cancel, archive', load: async () => (await import('./campaignObjectCommands.js')).registerCampaignObjectCommands },
  { name: 'schedule', args: '<action>', summary: 'recurring calls: cron schedules with a time zone (create, list, remove, run)', load: async () => (await import('./scheduleCommands.js')).registerScheduleCommands },
  { name: 'move', args: '[callId]', summary: 'move a scheduled call to another time (by call id, or --key and --campaign)', load: async () => (await import('./moveCommand.js')).registerMoveCommand },
  { name: 'cancel', args: '[callIds...]', summary: 'cancel calls not yet ringing', load: campaigns },
  { name: 'pause', summary: 'pause a campaign: calls not yet ringing wait', load: campaigns },
  { name: 'resume', summary: 'resume a paused campaign', load: campaigns },
  { name: 'dnc', summary: 'the do-not-call list (add, remove, list)', load: campaigns },
  { name: 'purge', summary: 'delete ended calls of a campaign or before a date', load: async () => (await import('./purgeCommand.js')).registerPurgeCommand },
  { name: 'demo', summary: 'run a small campaign through the simulator end to end', load: async () => (await import('./demoCommand.js')).registerDemoCommand },
  { name: 'agent', args: '<mode>', summary: 'run the voice agent worker (dev | start)', load: agent },
  { name: 'setup', summary: 'create the inbound dispatch rule or the outbound trunk', load: agent },
];

/** The command a command line names (`dialer help enqueue` names enqueue), or undefined. */
function commandName(args: readonly string[]): string | undefined {
  const positional = args.filter((a) => !a.startsWith('-'));
  return positional[0] === 'help' ? positional[1] : positional[0];
}

/**
 * The `dialer` program for `argv` (as process.argv): the named command's module is loaded and defines it fully; with
 * no known command, every command is listed by name and summary only (for --help and "did you mean …?").
 */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
  const program = new Command('dialer')
    .description('Outbound AI phone dialer: Redis call queue → rate-limited LiveKit SIP dialing → voice agent')
    .showHelpAfterError()
    .exitOverride();
  const name = commandName(argv.slice(2));
  const entry = COMMANDS.find((c) => c.name === name);
  if (entry) {
    (await entry.load())(program);
    return program;
  }
  for (const c of COMMANDS) {
    const command = program.command(c.name).summary(c.summary).description(c.summary);
    if (c.args) command.argument(c.args);
  }
  return program;
}

/** How a command line ended. */
export interface CommandLineEnd {
  /** The exit code (a command may also have set process.exitCode, e.g. `import` with rejected rows). */
  code: number;
  /** True when the process should exit at once (help, version, a usage or a thrown error); false when the command did its work and the process ends by itself. */
  exitNow: boolean;
  /** The one line to print on stderr for a thrown error. */
  errorLine?: string;
}

/**
 * Runs `argv` (as process.argv) to its end: help and version end 0, a usage error EXIT_INVALID_INPUT, an error a
 * command throws the code exitCodeFor gives with its errorLine. A command that ends the process itself (exitWithError
 * inside `action`) or sets process.exitCode does so as usual.
 */
export async function runCommandLine(argv: readonly string[]): Promise<CommandLineEnd> {
  try {
    await (await buildProgram(argv)).parseAsync(argv);
    return { code: EXIT_OK, exitNow: false };
  } catch (err) {
    // help and version exit 0; usage errors are the caller's input (commander has printed why)
    if (err instanceof CommanderError) return { code: err.exitCode === 0 ? EXIT_OK : EXIT_INVALID_INPUT, exitNow: true };
    return { code: exitCodeFor(err), exitNow: true, errorLine: errorLine(err) };
  }
}
