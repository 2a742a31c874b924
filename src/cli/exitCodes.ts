import { ConfigError, errorMessage, InvalidInputError } from '../core/errors.js';

/*
 * The exit codes of every `dialer` command (README, "Exit codes"). This module loads nothing heavy: `dialer --help`
 * and every error path use it before any command module is read.
 */

/** The command did what it was asked. */
export const EXIT_OK = 0;
/** A failure that is not the caller's input and not Redis being away (a bug, LiveKit refusing a request …). */
export const EXIT_FAILURE = 1;
/** Input the command cannot accept, nothing done: bad number, flag or settings, unknown campaign, conflicting --key. */
export const EXIT_INVALID_INPUT = 2;
/** `import` enqueued some rows and rejected others (each listed with its line). */
export const EXIT_PARTIAL = 3;
/** Redis could not be reached (or was lost mid-command): nothing, or not everything, was done; run it again later. */
export const EXIT_UNAVAILABLE = 4;

/** Redis could not be reached; the message names where it was looked for and what to do. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

/** Input that names a campaign with no calls; the message lists the campaigns whose names are close. */
export class UnknownCampaignError extends InvalidInputError {}

/** An error that carries a message for the person at the terminal (PhoneNumberError: the input as typed). */
function hasPersonMessage(err: unknown): err is Error & { forPerson: string } {
  return err instanceof Error && typeof (err as { forPerson?: unknown }).forPerson === 'string';
}

/** The exit code that fits an error thrown by a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof InvalidInputError || err instanceof ConfigError) return EXIT_INVALID_INPUT;
  if (err instanceof RedisUnavailableError) return EXIT_UNAVAILABLE;
  return EXIT_FAILURE;
}

/**
 * The line printed on stderr for an error: a number the person typed is shown as typed (logs mask it). A settings
 * error holds one line per bad setting (`DIAL_CPS: must be > 0 (got "0")`): each is printed as a line of its own.
 */
export function errorLine(err: unknown): string {
  const message = hasPersonMessage(err) ? err.forPerson : errorMessage(err);
  if (err instanceof ConfigError) return message.split('\n').map((line) => `dialer: ${line}`).join('\n');
  return `dialer: ${message}`;
}

/** Prints a one-line reason on stderr and exits with the code that fits the error. */
export function exitWithError(err: unknown): never {
  process.stderr.write(`${errorLine(err)}\n`);
  process.exit(exitCodeFor(err));
}
