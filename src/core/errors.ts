/** Settings that are missing or malformed; the message names the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Input from a user or another service that cannot be accepted (bad number, bad JSON, bad row). */
export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
}
