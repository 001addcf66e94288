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
  return TestWorkflowEnvironment.createTimeSkipping({ server: { executable: resolveTools().testServer } });
}

/**
 * A real Temporal dev server (the Temporal CLI's `server start-dev`), in memory, on loopback,
 * with visibility (list queries) and custom search attributes.
 */
export async function createDevServerEnv(
  options: Omit<DevServerConfig, 'type' | 'executable'> = {},
): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: { executable: resolveTools().temporalCli, ip: '127.0.0.1', ui: false, ...options },
  });
}
