/**
 * Retries `attempt` every `intervalMs` until it works or `patienceMs` has passed, then throws its
 * last error. For a dependency that may be briefly away (a database restarting), outside workflow
 * code: workflows retry through Temporal.
 */
export async function untilItWorks<T>(attempt: () => Promise<T>, { patienceMs, intervalMs = 1000 }: { patienceMs: number; intervalMs?: number }): Promise<T> {
  const deadline = Date.now() + patienceMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}
