/**
 * Retries `probe` until it returns a value `accept` likes, or gives up after `timeoutMs`
 * and returns the last value so the caller's assertion shows what was seen.
 * For eventually-consistent reads (visibility, a server's web UI warming up), never for timing.
 */
export async function eventually<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  { timeoutMs = 10_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
