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
  const run = (step: () => Promise<void>, what: string) =>
    step().then(
      () => exit(0),
      (err: unknown) => {
        logger.error({ err }, `${what} failed`);
        exit(1);
      },
    );
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      logger.info({ signal }, 'draining: finishing calls in flight (send the signal again to stop at once)');
      void run(() => stop.drain(), 'drain');
    } else if (signals === 2) {
      logger.warn({ signal }, 'stopping now: calls in flight will be resumed by another consumer');
      void run(() => stop.force(), 'forced stop');
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
