import type { Logger } from './logger.js';

/**
 * First SIGTERM/SIGINT drains (in-flight calls finish), a second forces; the process exits when either is done.
 * Returns a function that removes the handlers.
 */
export function handleShutdownSignals(
  stop: { drain(): Promise<void>; force(): Promise<void> },
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): () => void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      logger.info({ signal }, 'draining: finishing calls in flight (send the signal again to stop at once)');
      stop.drain().then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err }, 'drain failed');
          exit(1);
        },
      );
    } else if (signals === 2) {
      logger.warn({ signal }, 'stopping now: calls in flight will be resumed by another consumer');
      stop.force().then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err }, 'forced stop failed');
          exit(1);
        },
      );
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
