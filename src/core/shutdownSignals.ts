import type { Logger } from './logger.js';
import { SECOND } from './time.js';

/**
 * Signals this close after the first are copies of the same request, not a second one. One Ctrl-C reaches a process
 * several times: the terminal sends SIGINT to the whole foreground process group, and `npm run` forwards the SIGINT it
 * got to its child as well (@npmcli/run-script signal-manager), within milliseconds. A person pressing Ctrl-C again
 * to force a stop does it well after a second.
 */
export const DUPLICATE_SIGNAL_WINDOW_MS = SECOND;

/**
 * First SIGTERM/SIGINT drains (in-flight calls finish), a second forces; the process exits when either is done.
 * Copies of the first signal within DUPLICATE_SIGNAL_WINDOW_MS count as the first. Returns a function that removes
 * the handlers.
 */
export function handleShutdownSignals(
  stop: { drain(): Promise<void>; force(): Promise<void> },
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): () => void {
  let signals = 0;
  let firstAt = 0;
  const run = (step: () => Promise<void>, what: string) =>
    step().then(
      () => exit(0),
      (err: unknown) => {
        logger.error({ err }, `${what} failed`);
        exit(1);
      },
    );
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (signals === 1 && now - firstAt < DUPLICATE_SIGNAL_WINDOW_MS) {
      logger.debug({ signal }, 'the same stop request again (terminal and npm both deliver Ctrl-C): still draining');
      return;
    }
    if (signals === 0) firstAt = now;
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
