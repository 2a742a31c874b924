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
 * How long a forced stop may spend closing before the process exits anyway. A forced stop cannot wait for the drain
 * it interrupts: BullMQ's `Worker.close(true)` on a worker already closing returns the first close's promise
 * (bullmq classes/worker.js `close`), which waits for the calls in flight, or for a Redis that is not coming back.
 * Whatever is left is resumed by another consumer once its locks lapse.
 */
export const FORCE_STOP_GRACE_MS = 3 * SECOND;

/** Exit code of a stop whose cleanup did not finish in its time: the process stopped, not everything was closed. */
const EXIT_CLEANUP_TIMED_OUT = 1;

/**
 * First SIGTERM/SIGINT drains (in-flight calls finish), a second forces; the process exits when either is done, and
 * a forced stop exits after FORCE_STOP_GRACE_MS whatever is still closing (exit code 1 then). `drainTimeoutMs` bounds
 * the drain the same way (default: none; a Redis that never comes back would otherwise hold a single-signal stop for
 * ever). Copies of the first signal within DUPLICATE_SIGNAL_WINDOW_MS count as the first. Returns a function that
 * removes the handlers.
 */
export function handleShutdownSignals(
  stop: { drain(): Promise<void>; force(): Promise<void> },
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
  options: { drainTimeoutMs?: number; forceGraceMs?: number } = {},
): () => void {
  let signals = 0;
  let firstAt = 0;
  let exited = false;
  const exitOnce = (code: number) => {
    if (exited) return;
    exited = true;
    exit(code);
  };
  const run = (step: () => Promise<void>, what: string, limitMs: number | undefined) => {
    const timer =
      limitMs === undefined
        ? undefined
        : setTimeout(() => {
            logger.error({ limitMs }, `${what} did not finish in time; exiting with it unfinished`);
            exitOnce(EXIT_CLEANUP_TIMED_OUT);
          }, limitMs);
    timer?.unref();
    return step().then(
      () => {
        clearTimeout(timer);
        exitOnce(0);
      },
      (err: unknown) => {
        clearTimeout(timer);
        logger.error({ err }, `${what} failed`);
        exitOnce(1);
      },
    );
  };
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
      void run(() => stop.drain(), 'drain', options.drainTimeoutMs);
    } else if (signals === 2) {
      logger.warn({ signal }, 'stopping now: calls in flight will be resumed by another consumer');
      void run(() => stop.force(), 'forced stop', options.forceGraceMs ?? FORCE_STOP_GRACE_MS);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
