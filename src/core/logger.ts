import { pino, type Logger } from 'pino';

export type { Logger };

/** Fields that must never reach a log line, wherever they appear. */
const REDACTED_PATHS = [
  'apiSecret',
  'apiKey',
  '*.apiSecret',
  '*.apiKey',
  'phoneNumber',
  '*.phoneNumber',
  'phone_number',
  '*.phone_number',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
];

/** Creates the process logger: pino JSON on stderr (stdout is for command output such as call ids). */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', name = 'dialer'): Logger {
  return pino({ name, level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, pino.destination(2));
}
