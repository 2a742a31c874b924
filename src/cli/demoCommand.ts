import type { Command } from 'commander';
import { runDemo } from '../demo/runDemo.js';
import { action } from './cliContext.js';

/** `demo`: the whole pipeline on embedded defaults, ending with the campaign report. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a small mixed campaign through the simulator, consumer, results worker and simulated agent')
    .action(
      action(async () => {
        await runDemo();
        process.exit(0);
      }),
    );
}
