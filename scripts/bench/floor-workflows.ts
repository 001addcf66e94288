/** The engine's floor for a workflow, bundled only by the benchmark: start, one no-op activity, complete. */
import { proxyActivities } from '@temporalio/workflow';

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '10 seconds' });

export async function benchMinimal(): Promise<void> {
  await noop();
}
