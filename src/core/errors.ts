/** Settings that are missing or malformed; the message names the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Input from a user or another service that cannot be accepted (bad number, bad JSON, bad row). */
export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
}

/** String() of any value; a value String() cannot read (an object without a prototype) by its tag instead. */
function describeThrown(thrown: unknown): string {
  try {
    return String(thrown);
  } catch {
    return Object.prototype.toString.call(thrown);
  }
}

/**
 * The one way to read a thrown value (`catch (err)` gives `unknown`): an Error is returned as it is; anything else
 * thrown or rejected (a string, a plain object) is wrapped in an Error whose message is its String() form and whose
 * `cause` is the value itself.
 */
export function toError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(describeThrown(thrown), { cause: thrown });
}

/** The message of a thrown value: an Error's own `message`, String() of anything else (see toError). */
export function errorMessage(thrown: unknown): string {
  return toError(thrown).message;
}

/**
 * The Node.js system error code of a thrown value (`ENOENT`, `ECONNREFUSED`: NodeJS.ErrnoException's `code`), or
 * undefined when it is not an Error or carries no string code.
 */
export function errorCode(thrown: unknown): string | undefined {
  if (!(thrown instanceof Error) || !('code' in thrown)) return undefined;
  return typeof thrown.code === 'string' ? thrown.code : undefined;
}
