import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { DevServerConfig } from '@temporalio/testing/lib/ephemeral-server';
import { resolveTools } from '../../src/temporal/tools';

/** Bundle once per test file; each test then starts a cheap worker on the bundle. */
export { bundleWorkflows } from '../../src/temporal/worker';

/**
 * Temporal's Java time-skipping test server, provisioned by `npm run provision`.
 * Timers are skipped while a test awaits a workflow result.
 */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  return startedInTime(() => TestWorkflowEnvironment.createTimeSkipping({ server: { executable: resolveTools().testServer } }));
}

/**
 * A real Temporal dev server (the Temporal CLI's `server start-dev`), in memory, on loopback,
 * with visibility (list queries) and custom search attributes.
 */
export async function createDevServerEnv(
  options: Omit<DevServerConfig, 'type' | 'executable'> = {},
): Promise<TestWorkflowEnvironment> {
  return startedInTime(() =>
    TestWorkflowEnvironment.createLocal({
      server: { executable: resolveTools().temporalCli, ip: '127.0.0.1', ui: false, ...options },
    }),
  );
}

const START_ATTEMPTS = 3;

/**
 * sdk-core gives a server a fixed 5 s to listen, then kills it. The Java test server's JVM (or the
 * dev server) can take longer on a busy 2-core machine, failing the whole test file; a second
 * start is also faster, its files being cached by then. Any other failure is not retried.
 */
async function startedInTime(start: () => Promise<TestWorkflowEnvironment>): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      // Not `instanceof Error`: the native module's errors come from outside Jest's sandbox realm.
      const late = String((err as { message?: unknown } | undefined)?.message).includes('did not start within');
      if (!late || attempt === START_ATTEMPTS) throw err;
      console.warn(`Temporal test server did not start in time (attempt ${attempt} of ${START_ATTEMPTS}), starting it again`);
    }
  }
}
