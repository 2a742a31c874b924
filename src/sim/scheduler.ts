/** Timers grouped by owner (one call, one transfer) so an owner's pending steps can be cancelled together. */
export class TimerGroup {
  private readonly timers = new Set<NodeJS.Timeout>();
  private cancelled = false;

  constructor(private readonly owner: Scheduler) {}

  /** Runs `fn` after `ms` unless the group (or the whole scheduler) is cancelled first. */
  after(ms: number, fn: () => void): void {
    if (this.cancelled || this.owner.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  cancel(): void {
    this.cancelled = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.owner.forget(this);
  }
}

export class Scheduler {
  private readonly groups = new Set<TimerGroup>();
  closed = false;

  group(): TimerGroup {
    const group = new TimerGroup(this);
    this.groups.add(group);
    return group;
  }

  forget(group: TimerGroup): void {
    this.groups.delete(group);
  }

  /** Cancels every pending timer; later `after` calls do nothing. */
  close(): void {
    this.closed = true;
    for (const group of [...this.groups]) group.cancel();
  }
}
