import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure, type DataConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities';
import { createFulfillmentWorkers } from '../../src/temporal/worker';
import { registerSearchAttributes } from '../../src/temporal/search-attributes';
import { eventually } from './eventually';
import { bundleWorkflows, createTimeSkippingEnv } from './temporal-env';

/*
 * Workers for workflow tests that stop however the test ends, so one slow or failed test cannot
 * fail the tests after it. A test file calls `afterEach(stopTestWorkers)` and runs each test's
 * workers through `withFulfillmentWorkers` (the product's pair) or `new TestWorkers(client).run`.
 * Each piece answers something that went wrong on a busy machine:
 *
 * - Each test polls its own task queue. sdk-core refuses a second worker on a task queue while the
 *   connection still holds the first ("Registration of multiple workers with overlapping worker
 *   task types"), and a worker left behind would take the next test's tasks.
 * - Jest abandons a timed-out test without settling its promise, so `worker.runUntil(fn)` never
 *   stops that worker. Every running set is kept here; `stopTestWorkers` (an `afterEach`) stops
 *   what a test left running.
 * - The time-skipping test server stops skipping time, for every test on that server, while any
 *   workflow or activity task is outstanding, and terminating a workflow while one of its tasks is
 *   outstanding does not release that. Activities the test left hanging (a gate never opened) are
 *   therefore made to end first, then the test's workflows are closed while its workers still
 *   poll, and only then are the workers stopped.
 */

let queuesHandedOut = 0;

/** A task queue no other test in this process uses (the product also polls `<queue>-stripe`). */
export function uniqueTaskQueue(prefix = 'test'): string {
  return `${prefix}-${++queuesHandedOut}-${randomUUID().slice(0, 8)}`;
}

/** Each wait below is bounded: cleaning up after a failed test must never hang the next one. */
const SETTLE_MS = 5_000;
const STOP_MS = 15_000;

/** What an activity of a test that has ended throws: final, so the workflow does not wait on it. */
function testEnded(): ApplicationFailure {
  return ApplicationFailure.nonRetryable('the test ended; its activities are aborted', 'TestEnded');
}

/** What `promise` resolves to, or `undefined` once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const running = new Set<TestWorkers>();

/** The workers of one test, with the workflows they served, stopped as a whole. */
export class TestWorkers {
  private readonly abort = new AbortController();
  private readonly aborted: Promise<never>;
  /** The workflows these workers ran activities for: the ones to close when the test ends. */
  private readonly workflowIds = new Set<string>();
  private workers: Worker[] = [];
  private runs: Promise<void>[] = [];
  private stopping?: Promise<void>;

  constructor(private readonly client: Client) {
    this.aborted = new Promise<never>((_, reject) => this.abort.signal.addEventListener('abort', () => reject(testEnded())));
    this.aborted.catch(() => undefined); // rejected on purpose, possibly with nobody racing it
  }

  /** `activities` as given, except that each call notes its workflow and ends when the test does. */
  endWithTheTest<A extends object>(activities: A): A {
    const wrapped = Object.entries(activities).map(([name, activity]: [string, (...args: unknown[]) => Promise<unknown>]) => [
      name,
      async (...args: unknown[]) => {
        const workflowId = Context.current().info.workflowExecution?.workflowId;
        if (workflowId) this.workflowIds.add(workflowId);
        if (this.abort.signal.aborted) throw testEnded();
        return Promise.race([activity(...args), this.aborted]);
      },
    ]);
    return Object.fromEntries(wrapped) as A;
  }

  /** Runs `workers` until `fn` settles, then stops them; a worker that fails ends `fn`'s wait at once, as `runUntil` would. */
  async run<T>(workers: Worker[], fn: () => Promise<T>): Promise<T> {
    this.workers = workers;
    this.runs = workers.map((worker) => worker.run());
    running.add(this);
    const stoppedEarly = Promise.race(this.runs).then(() => {
      throw new Error('a worker stopped before the test was done with it');
    });
    try {
      return await Promise.race([fn(), stoppedEarly]);
    } finally {
      await this.stop();
    }
  }

  /** Ends the test's activities, closes its workflows, stops its workers. Safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= this.stopInOrder();
    return this.stopping;
  }

  private async stopInOrder(): Promise<void> {
    this.abort.abort();
    try {
      await Promise.all([...this.workflowIds].map((workflowId) => this.close(workflowId)));
    } finally {
      await this.shutDown();
    }
  }

  private async shutDown(): Promise<void> {
    for (const worker of this.workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    const outcomes = await within(Promise.allSettled(this.runs), STOP_MS);
    running.delete(this);
    if (!outcomes) console.warn(`test workers still running ${STOP_MS} ms after shutdown: ${this.workers.map((w) => w.options.taskQueue).join(', ')}`);
    const failure = outcomes?.find((outcome) => outcome.status === 'rejected');
    if (failure) throw failure.reason;
  }

  /**
   * Terminates a workflow the test left running, once nothing of it is outstanding (see the top of
   * this file): with the activities aborted, a running workflow soon waits on a timer or a signal only.
   */
  private async close(workflowId: string): Promise<void> {
    const handle = this.client.workflow.getHandle(workflowId);
    try {
      const described = await eventually(
        () => handle.describe(),
        ({ status, raw }) => status.name !== 'RUNNING' || (!raw.pendingActivities?.length && !raw.pendingWorkflowTask),
        { timeoutMs: SETTLE_MS, intervalMs: 50 },
      );
      if (described.status.name === 'RUNNING') {
        console.warn(`terminating ${workflowId}, which the test left running`);
        await handle.terminate('the test ended');
      }
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
}

/** For `afterEach`: stops whatever a test left running, e.g. after Jest timed it out. */
export async function stopTestWorkers(): Promise<void> {
  await Promise.all([...running].map((workers) => workers.stop()));
}

export interface FulfillmentWorkersSetup {
  /** The time-skipping environment of the test file. */
  env: TestWorkflowEnvironment;
  /** The workflows, bundled once per file. */
  bundle: WorkflowBundleWithSourceMap;
  activities: Activities;
  /** The queue the test starts its workflows on; a fresh one when not given. */
  taskQueue?: string;
  /** Payload encryption; the bundle must then carry its failure converter. */
  dataConverter?: DataConverter;
}

/**
 * The product's own pair of workers (workflows, and the rate-limited Stripe queue) around `fn`,
 * which receives their task queue. The test file calls `afterEach(stopTestWorkers)`.
 */
export async function withFulfillmentWorkers<T>(setup: FulfillmentWorkersSetup, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = setup.taskQueue ?? uniqueTaskQueue('fulfillment-test');
  const workers = new TestWorkers(setup.env.client);
  const [main, stripe] = await createFulfillmentWorkers({
    connection: setup.env.nativeConnection,
    namespace: 'default',
    taskQueue,
    activities: workers.endWithTheTest(setup.activities),
    stripeActivitiesPerSecond: 100,
    // Tiny, so executions are evicted and replayed from history as they wait: every branch a test
    // walks is also a replay test of itself.
    cachedWorkflows: 2,
    workflowBundle: setup.bundle,
    dataConverter: setup.dataConverter,
  });
  return workers.run([main!, stripe!], () => fn(taskQueue));
}

/**
 * The setup every workflow test file shares: one time-skipping server and one workflow bundle for
 * the file, a fresh task queue per test, and workers stopped however a test ends. `withWorker`
 * runs the product's pair of workers on the test's queue around `fn`.
 */
export function timeSkippingWorkflowTests(prefix: string) {
  const suite = {
    env: undefined as unknown as TestWorkflowEnvironment,
    bundle: undefined as unknown as WorkflowBundleWithSourceMap,
    taskQueue: '',
    withWorker<T>(activities: Activities, fn: () => Promise<T>): Promise<T> {
      return withFulfillmentWorkers({ env: suite.env, bundle: suite.bundle, activities, taskQueue: suite.taskQueue }, fn);
    },
  };
  beforeAll(async () => {
    [suite.env, suite.bundle] = await Promise.all([createTimeSkippingEnv(), bundleWorkflows(require.resolve('../../workflows'))]);
    await registerSearchAttributes(suite.env.connection, 'default');
  });
  afterAll(async () => {
    await suite.env?.teardown();
  });
  beforeEach(() => {
    suite.taskQueue = uniqueTaskQueue(prefix); // its own queue: a test that overruns cannot disturb the next
  });
  afterEach(stopTestWorkers); // a test that timed out leaves its workers running
  return suite;
}
