/**
 * A call's two timers: the maximum duration (from the moment the conversation starts) and the silence timeout (from
 * the last thing said or done). What they do when they fire is the controller's; whether a quiet moment is silence is
 * asked of `isQuiet` (someone talking, or a tool running, is not silence).
 */
export interface CallTimerHandlers {
  maxDurationMs: number;
  silenceTimeoutMs: number;
  onMaxDuration(): void;
  onSilence(): void;
  /** False while someone talks or a tool runs: the silence timer then starts over. */
  isQuiet(): boolean;
}

export class CallTimers {
  private maxDuration: NodeJS.Timeout | undefined;
  private silence: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly handlers: CallTimerHandlers) {}

  /** Starts both timers (once the session is attached). */
  start(): void {
    if (this.stopped) return;
    this.maxDuration = setTimeout(() => this.handlers.onMaxDuration(), this.handlers.maxDurationMs);
    this.maxDuration.unref?.();
    this.touch();
  }

  /** Restarts the silence timer: something was said or done. */
  touch(): void {
    if (this.stopped) return;
    if (this.silence) clearTimeout(this.silence);
    this.silence = setTimeout(() => this.onSilence(), this.handlers.silenceTimeoutMs);
    this.silence.unref?.();
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
    if (this.maxDuration) clearTimeout(this.maxDuration);
    if (this.silence) clearTimeout(this.silence);
    this.maxDuration = undefined;
    this.silence = undefined;
  }
}
