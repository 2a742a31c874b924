import type { CancelTimer, Clock } from '../core/time.js';

/**
 * A call's two timers: the maximum duration (from the moment the conversation starts) and the silence timeout (from
 * the last thing said or done). What they do when they fire is the controller's; whether a quiet moment is silence is
 * asked of `isQuiet` (someone talking, or a tool running, is not silence). They run on `clock` (a test moves it).
 */
export interface CallTimerHandlers {
  maxDurationMs: number;
  silenceTimeoutMs: number;
  onMaxDuration(): void;
  onSilence(): void;
  /** False while someone talks or a tool runs: the silence timer then starts over. */
  isQuiet(): boolean;
  clock: Clock;
}

export class CallTimers {
  private cancelMaxDuration: CancelTimer | undefined;
  private cancelSilence: CancelTimer | undefined;
  private stopped = false;

  constructor(private readonly handlers: CallTimerHandlers) {}

  /** Starts both timers (once the session is attached). */
  start(): void {
    if (this.stopped) return;
    this.cancelMaxDuration = this.handlers.clock.setTimer(this.handlers.maxDurationMs, () => this.handlers.onMaxDuration());
    this.touch();
  }

  /** Restarts the silence timer: something was said or done. */
  touch(): void {
    if (this.stopped) return;
    this.cancelSilence?.();
    this.cancelSilence = this.handlers.clock.setTimer(this.handlers.silenceTimeoutMs, () => this.onSilence());
  }

  private onSilence(): void {
    if (!this.handlers.isQuiet()) {
      this.touch(); // someone is talking or a tool is running: that is not silence
      return;
    }
    this.handlers.onSilence();
  }

  /** Stops both for good (the call is ending). */
  stop(): void {
    this.stopped = true;
    this.cancelMaxDuration?.();
    this.cancelSilence?.();
    this.cancelMaxDuration = undefined;
    this.cancelSilence = undefined;
  }
}
