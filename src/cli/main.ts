import { Command, CommanderError } from 'commander';
import { EXIT_INVALID_INPUT, exitWithError } from './cliContext.js';
import { registerProducerCommands } from './producerCommands.js';
import { registerConsumerCommands } from './consumerCommands.js';
import { registerReportCommand } from './reportCommand.js';
import { registerDemoCommand } from './demoCommand.js';
import { registerAgentCommands } from './agentCommands.js';
import { registerCampaignCommands } from './campaignCommands.js';
import { registerServeCommand } from './serveCommand.js';
import { registerPurgeCommand } from './purgeCommand.js';

/** The `dialer` command line: producers, consumers, results, report, demo, agent and setup. */
export function buildProgram(): Command {
  const program = new Command('dialer')
    .description('Outbound AI phone dialer: Redis call queue → rate-limited LiveKit SIP dialing → voice agent')
    .showHelpAfterError()
    .exitOverride();
  registerProducerCommands(program);
  registerConsumerCommands(program);
  registerReportCommand(program);
  registerCampaignCommands(program);
  registerServeCommand(program);
  registerPurgeCommand(program);
  registerDemoCommand(program);
  registerAgentCommands(program);
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; usage errors are the caller's input
      process.exit(err.exitCode === 0 ? 0 : EXIT_INVALID_INPUT);
    }
    exitWithError(err);
  }
}

await main();
