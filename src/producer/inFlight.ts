/**
 * Runs async tasks with at most `limit` in flight. The first failure stops new tasks; `drain` waits for every
 * started task (so none is still writing when the caller reports) and then throws that failure.
 */
export class InFlight {
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  /** Starts `task` once fewer than `limit` run; false (nothing started) once a task has failed. */
  async run(task: () => Promise<void>): Promise<boolean> {
    while (this.running.size >= this.limit && !this.failure) await Promise.race(this.running);
    if (this.failure) return false;
    const p: Promise<void> = task().then(
      () => {
        this.running.delete(p);
      },
      (error: unknown) => {
        this.running.delete(p);
        this.failure ??= { error };
      },
    );
    this.running.add(p);
    return true;
  }

  /** Waits for every started task; throws the first failure, if any. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
    if (this.failure) throw this.failure.error;
  }
}
