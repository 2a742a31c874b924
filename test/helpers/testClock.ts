import type { CancelTimer, Clock } from '../../src/core/time.js';

interface PendingTimer {
  at: number;
  /** Order of setting, so timers due at the same moment fire in the order they were set. */
  seq: number;
  fire(): void;
}

/** Most timers a single advance() fires: a bound on a timer that keeps re-arming itself at the same moment. */
const MAX_FIRED_PER_ADVANCE = 100_000;

/**
 * A clock the test moves forward itself: now() stands still until advance(), and sleeps and timers fire only when
 * advanced past, in due order, each followed by the promise callbacks it set off. Time never passes by itself, so a
 * test proves "nothing happens for ten minutes" by advancing ten minutes, not by waiting.
 */
export class TestClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: PendingTimer[] = [];
  private waiters: (() => void)[] = [];

  constructor(start = Date.parse('2030-01-15T12:00:00Z')) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        cancel();
        reject(signal?.reason);
      };
      const cancel = this.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  setTimer(ms: number, callback: () => void): CancelTimer {
    const timer: PendingTimer = { at: this.current + Math.max(0, ms), seq: this.seq++, fire: callback };
    this.timers.push(timer);
    this.wake();
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** How many sleeps and timers wait on this clock now. */
  get pending(): number {
    return this.timers.length;
  }

  /** When the next sleep or timer is due (epoch ms), or undefined when none waits. */
  nextDue(): number | undefined {
    return this.timers.reduce<number | undefined>((min, t) => (min === undefined || t.at < min ? t.at : min), undefined);
  }

  /**
   * Moves time forward by `ms`, firing every sleep and timer due on the way in order (time reads each one's due
   * moment while it fires), and lets the promise callbacks each sets off run before the next.
   */
  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    for (let fired = 0; ; fired++) {
      if (fired >= MAX_FIRED_PER_ADVANCE) throw new Error(`more than ${MAX_FIRED_PER_ADVANCE} timers fired in one advance of ${ms} ms`);
      await settle();
      const next = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.current = Math.max(this.current, next.at);
      next.fire();
    }
    this.current = end;
    await settle();
  }

  /** Advances to the next due sleep or timer and fires it (and any due at the same moment); false when none waits. */
  async advanceToNext(): Promise<boolean> {
    const due = this.nextDue();
    if (due === undefined) return false;
    await this.advance(due - this.current);
    return true;
  }

  /**
   * Runs `work` to its end on this clock: each time the code under test waits on the clock (a sleep or timer is set),
   * time moves to that moment at once. Real time bounds it (`timeoutMs`): work that waits on something else for
   * longer fails the test.
   */
  async drive<T>(work: Promise<T>, timeoutMs = 10_000): Promise<T> {
    let settled = false;
    const watched = work.finally(() => {
      settled = true;
      this.wake();
    });
    const deadline = Date.now() + timeoutMs;
    for (let fired = 0; !settled; fired++) {
      if (fired >= MAX_FIRED_PER_ADVANCE) throw new Error(`more than ${MAX_FIRED_PER_ADVANCE} timers fired while driving`);
      if (this.timers.length > 0) {
        await this.advanceToNext();
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the work neither ended nor waited on the test clock within ${timeoutMs} ms`);
      await this.nextWake(left);
    }
    return watched;
  }

  /**
   * Resolves once at least `count` sleeps or timers wait on this clock: the code under test has reached the wait the
   * test is about to move past. Real time bounds it (`timeoutMs`), so a wait that never comes fails the test.
   */
  async untilPending(count = 1, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.timers.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fewer than ${count} timers set on the test clock within ${timeoutMs} ms (now ${this.timers.length})`);
      await this.nextWake(left);
    }
  }

  /** Resolves when a timer is set (or wake() is called), or after `ms` of real time. */
  private nextWake(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timeout = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timeout);
        resolve();
      });
    });
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** Lets pending promise callbacks and I/O callbacks already queued run (one turn of the event loop). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
