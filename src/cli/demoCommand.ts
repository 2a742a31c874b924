import type { Command } from 'commander';
import { NoRedisError } from '../core/localRedis.js';
import { runDemo } from '../demo/runDemo.js';
import { action } from './cliContext.js';
import { RedisUnavailableError } from './exitCodes.js';

/** `demo`: the whole pipeline on embedded defaults, ending with the campaign report. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a small mixed campaign through the simulator, consumer, results worker and simulated agent')
    .action(
      action(async () => {
        try {
          await runDemo();
        } catch (err) {
          // no Redis to run on is README's exit 4, the same as every other command
          if (err instanceof NoRedisError) throw new RedisUnavailableError(err.message);
          throw err;
        }
        process.exit(0);
      }),
    );
}
