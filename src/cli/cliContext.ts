import { config as loadDotenv } from 'dotenv';
import { loadConfig, type DialerConfig } from '../core/config.js';
import { ConfigError, InvalidInputError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';

/** Exit code for input the command cannot accept (bad number, bad JSON, bad settings). */
export const EXIT_INVALID_INPUT = 2;
/** Exit code for a failure that is not the caller's input (Redis down, LiveKit unreachable …). */
export const EXIT_FAILURE = 1;

/** What every command starts from: validated settings and the process logger. */
export interface CliContext {
  config: DialerConfig;
  logger: Logger;
}

let cached: CliContext | undefined;

/** Loads `.env` (without overriding the real environment) and validates the settings, once per process. */
export function cliContext(): CliContext {
  if (!cached) {
    loadDotenv({ quiet: true });
    const config = loadConfig(process.env);
    cached = { config, logger: createLogger(config.logLevel) };
  }
  return cached;
}

/** An error that carries a message for the person at the terminal (PhoneNumberError: the input as typed). */
function hasPersonMessage(err: unknown): err is Error & { forPerson: string } {
  return err instanceof Error && typeof (err as { forPerson?: unknown }).forPerson === 'string';
}

/** Prints a one-line reason on stderr and exits with the code that fits the error. */
export function exitWithError(err: unknown): never {
  const isInput = err instanceof InvalidInputError || err instanceof ConfigError;
  // a number the person typed is shown as typed (PhoneNumberError.message masks it, for logs)
  const message = hasPersonMessage(err) ? err.forPerson : err instanceof Error ? err.message : String(err);
  process.stderr.write(`dialer: ${message}\n`);
  process.exit(isInput ? EXIT_INVALID_INPUT : EXIT_FAILURE);
}

/** Runs a command body, turning thrown errors into a readable line and the right exit code. */
export function action<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (err) {
      exitWithError(err);
    }
  };
}
