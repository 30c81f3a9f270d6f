/** Runs `fn` on every item, in order of taking, with at most `limit` calls in flight. */
export async function eachConcurrently<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  const pending = items.entries(); // one iterator the workers share, so each item is taken once
  const worker = async (): Promise<void> => {
    for (const [index, item] of pending) await fn(item, index);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
