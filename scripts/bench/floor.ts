/**
 * The Temporal engine's own floor, on the same server as the product: bare signal-with-start (what
 * the ingress's acknowledgement waits for, with no handler around it) and a minimal workflow.
 */
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type NativeConnectionOptions } from '@temporalio/worker';
import { bundleWorkflows } from '../../src/temporal/worker';
import { inParallel, openLoop, waitUntil, type Latencies } from './load';

const FLOOR_QUEUE = 'bench-floor';

/** Signal-with-start at `perSecond` to executions no worker polls for: the server's own latency. */
export function signalWithStartFloor(client: Client, perSecond: number, count: number, tag: string): Promise<Latencies> {
  return openLoop(perSecond, count, async (i) => {
    await client.workflow.signalWithStart('benchIdle', {
      taskQueue: `${FLOOR_QUEUE}-idle`,
      workflowId: `floor-${tag}-${i}`,
      signal: 'poke',
      signalArgs: [],
      workflowExecutionTimeout: '1 hour',
    });
    return true;
  });
}

export interface Throughput {
  perSecond: number;
  /** Workflow tasks and activity tasks the server dispatched per execution (sampled histories). */
  roundTrips: { workflowTasks: number; activityTasks: number };
}

/** How many minimal workflows the server completes per second, `inFlight` starts at a time. */
export async function minimalWorkflowThroughput(target: NativeConnectionOptions, client: Client, count: number, inFlight: number): Promise<Throughput> {
  const connection = await NativeConnection.connect(target);
  const worker = await Worker.create({
    connection,
    taskQueue: FLOOR_QUEUE,
    workflowBundle: await bundleWorkflows(path.join(__dirname, 'floor-workflows.ts')),
    activities: { noop: async () => undefined },
  });
  const tag = Date.now().toString(36);
  try {
    return await worker.runUntil(async () => {
      // Warm up first (pollers, the sticky queue), as the product's long-running workers are.
      const warmUp = Array.from({ length: inFlight }, (_, i) => `minimal-${tag}-warm-${i}`);
      await Promise.all(warmUp.map((workflowId) => client.workflow.execute('benchMinimal', { taskQueue: FLOOR_QUEUE, workflowId })));
      const before = await completedCount(client, 'benchMinimal');
      const ids = Array.from({ length: count }, (_, i) => `minimal-${tag}-${i}`);
      const started = Date.now();
      await inParallel(ids, inFlight, async (workflowId) => {
        await client.workflow.start('benchMinimal', { taskQueue: FLOOR_QUEUE, workflowId });
      });
      await waitUntil(async () => (await completedCount(client, 'benchMinimal')) >= before + count, 300_000);
      const perSecond = count / ((Date.now() - started) / 1000);
      return { perSecond, roundTrips: await roundTrips(client, ids.slice(0, 20)) };
    });
  } finally {
    await connection.close();
  }
}

/** Completed executions of a workflow type, from visibility: one cheap query, the same for the product and the floor. */
export async function completedCount(client: Client, workflowType: string): Promise<number> {
  const { count } = await client.workflow.count(`WorkflowType = '${workflowType}' AND ExecutionStatus = 'Completed'`);
  return count;
}

/** Average workflow and activity tasks per execution, from their histories (local activities run inside workflow tasks). */
export async function roundTrips(client: Client, workflowIds: string[]): Promise<Throughput['roundTrips']> {
  let workflowTasks = 0;
  let activityTasks = 0;
  for (const id of workflowIds) {
    const history = await client.workflow.getHandle(id).fetchHistory();
    for (const event of history.events ?? []) {
      if (event.workflowTaskScheduledEventAttributes) workflowTasks++;
      if (event.activityTaskScheduledEventAttributes) activityTasks++;
    }
  }
  return { workflowTasks: workflowTasks / workflowIds.length, activityTasks: activityTasks / workflowIds.length };
}
