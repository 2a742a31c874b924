import { pino, type Logger } from 'pino';
import { errorCode } from './errors.js';

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

/**
 * Node prints process warnings (deprecations, MaxListenersExceededWarning …) on stderr as plain multi-line text. This
 * replaces that printer (Node's own `warning` listener) with pino: each distinct warning once, as JSON. Call it once
 * per process, in long-running commands whose stderr is read as JSON.
 */
export function logProcessWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  const seen = new Set<string>();
  process.on('warning', (warning) => {
    const key = `${warning.name}: ${warning.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    const code = errorCode(warning);
    logger.warn({ warning: { name: warning.name, message: warning.message, code } }, 'Node.js warning');
  });
}
