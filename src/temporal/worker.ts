import {
  bundleWorkflowCode,
  NativeConnection,
  Worker,
  type Logger,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import type { Activities } from '../../activities';

export interface FulfillmentWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /** Pre-bundled workflow code (tests bundle once per file); otherwise `workflows/` is bundled now. */
  workflowBundle?: WorkflowBundleWithSourceMap;
}

export async function createFulfillmentWorker(options: FulfillmentWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: options.activities,
    workflowBundle: options.workflowBundle ?? (await bundleWorkflows(require.resolve('../../workflows'))),
  });
}

/** Bundles deterministic workflow code for the worker's sandbox, printing only warnings and errors (not webpack's report). */
export async function bundleWorkflows(workflowsPath: string): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath, logger: bundlerLogger });
}

const bundlerLogger: Logger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message) => console.warn(message),
  error: (message) => console.error(message),
};
