/**
 * Runs `task` over `items`, at most `limit` at a time, and resolves with the results in the order of `items` (rejects
 * with the first failure). For tests that start several independent processes: at once they take the time of the
 * slowest few instead of the sum, while `limit` keeps a 2-core machine shared with other test files from thrashing.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  const queue = items.entries();
  const lane = async (): Promise<void> => {
    for (const [index, item] of queue) results[index] = await task(item, index);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return results;
}
