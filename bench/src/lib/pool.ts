// Bounded-concurrency map with progress lines, for creating thousands of machines.

export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  progress?: { label: string; everyMs?: number },
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let done = 0;
  let failed: unknown;
  const started = Date.now();
  let lastReport = started;
  const report = (final: boolean) => {
    if (!progress) return;
    const now = Date.now();
    if (!final && now - lastReport < (progress.everyMs ?? 2_000)) return;
    lastReport = now;
    const rate = done / Math.max(0.001, (now - started) / 1000);
    console.log(`  ${progress.label}: ${done}/${items.length} (${Math.round(rate)}/s)`);
  };
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (err) {
        failed ??= err;
        return;
      }
      done += 1;
      report(false);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
  report(true);
  return results;
}
