import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { stripeActivities, type Activities } from '../../activities';
import { stripeTaskQueue } from '../../workflows/definitions';

export interface FulfillmentWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /**
   * Cap on Stripe activities per second across every worker of this task queue: fulfillment's share
   * of the request budget. Each activity makes at least one request, so the queue never hands out
   * more than the budget can serve; the budget itself counts the requests (src/stripe/request-budget.ts).
   */
  stripeActivitiesPerSecond: number;
  /**
   * Executions kept in memory between tasks. Bounded, so a worker's memory does not grow with the
   * number of sessions waiting for a delayed payment; an evicted one is replayed when it wakes.
   */
  cachedWorkflows: number;
  /** Pre-bundled workflow code (tests bundle once per file); otherwise `workflows/` is bundled now. */
  workflowBundle?: WorkflowBundleWithSourceMap;
  /** Payload encryption (`dataConverterFor`); a pre-built bundle must carry the same failure converter. */
  dataConverter?: DataConverter;
}

/**
 * The two workers a fulfillment process runs: workflows and all other activities on the task
 * queue, and retrieve-session on the rate-limited Stripe queue.
 */
export async function createFulfillmentWorkers(options: FulfillmentWorkerOptions): Promise<Worker[]> {
  const { connection, namespace, taskQueue, activities, dataConverter } = options;
  const workflowBundle =
    options.workflowBundle ??
    (await bundleWorkflows(require.resolve('../../workflows'), { failureConverterPath: dataConverter?.failureConverterPath }));
  return Promise.all([
    Worker.create({
      connection,
      namespace,
      taskQueue,
      activities: withoutStripeReads(activities),
      maxCachedWorkflows: options.cachedWorkflows,
      workflowBundle,
      dataConverter,
    }),
    Worker.create({
      connection,
      namespace,
      taskQueue: stripeTaskQueue(taskQueue),
      activities: stripeActivities(activities),
      // Enforced by the server for the whole task queue, however many workers poll it.
      maxTaskQueueActivitiesPerSecond: options.stripeActivitiesPerSecond,
      dataConverter,
    }),
  ]);
}

/** Everything but the Stripe reads, which only the rate-limited queue's worker may run. */
function withoutStripeReads(activities: Activities): Partial<Activities> {
  const stripeReads = new Set(Object.keys(stripeActivities(activities)));
  return Object.fromEntries(Object.entries(activities).filter(([name]) => !stripeReads.has(name)));
}

/**
 * Bundles deterministic workflow code for the worker's sandbox (with the failure converter that
 * encodes failures, when payloads are encrypted), printing only warnings and errors
 * (not webpack's report). It runs in a short-lived child process: webpack's memory leaves with it
 * instead of staying in this long-lived process's heap (docs/benchmarks.md). (Not a worker thread:
 * the bundler's native compiler does not survive being loaded by a second thread.)
 */
export async function bundleWorkflows(
  workflowsPath: string,
  options: { failureConverterPath?: string } = {},
): Promise<WorkflowBundleWithSourceMap> {
  const args = [require.resolve('@temporalio/worker'), workflowsPath, options.failureConverterPath ?? ''];
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['-e', BUNDLER, ...args], {
    maxBuffer: 256 * 1024 * 1024,
  });
  if (stderr.trim()) console.warn(stderr.trim());
  return JSON.parse(stdout) as WorkflowBundleWithSourceMap;
}

const BUNDLER = `
const { bundleWorkflowCode } = require(process.argv[1]);
const quiet = () => undefined;
const logger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: (m) => console.error(m), error: (m) => console.error(m) };
bundleWorkflowCode({ workflowsPath: process.argv[2], failureConverterPath: process.argv[3] || undefined, logger })
  .then((bundle) => process.stdout.write(JSON.stringify(bundle)))
  .catch((err) => { console.error(err); process.exit(1); });
`;
