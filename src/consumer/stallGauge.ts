import { SECOND } from '../core/time.js';

/** How often the gauge checks that this process's event loop is on time. */
const SAMPLE_INTERVAL_MS = 10;
/** Stalls are remembered this long (in one-second buckets). */
const BUCKET_MS = SECOND;
const BUCKETS = 5;

/**
 * Measures how long this process's event loop recently stalled (GC, CPU starvation, the OS descheduling it).
 * A stall between taking a dial slot and the request reaching the carrier bunches starts that were spaced apart,
 * so the dial limiter widens its safety margin by the recent worst stall.
 */
export class StallGauge {
  private readonly buckets: number[] = new Array<number>(BUCKETS).fill(0);
  private current = 0;
  private bucketStartedAt = performance.now();
  private last = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  private sample(): void {
    const now = performance.now();
    const lag = Math.max(0, now - this.last - SAMPLE_INTERVAL_MS);
    this.last = now;
    if (now - this.bucketStartedAt >= BUCKET_MS) {
      this.current = (this.current + 1) % BUCKETS;
      this.buckets[this.current] = 0;
      this.bucketStartedAt = now;
    }
    this.buckets[this.current] = Math.max(this.buckets[this.current] ?? 0, lag);
  }

  /** The longest stall in the last few seconds, in ms (including one still going on right now). */
  recentMaxMs(): number {
    const ongoing = Math.max(0, performance.now() - this.last - SAMPLE_INTERVAL_MS);
    return Math.max(ongoing, ...this.buckets);
  }

  /** Idempotent. */
  stop(): void {
    clearInterval(this.timer);
  }
}
