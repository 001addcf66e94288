import { randomUUID } from 'node:crypto';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflows, createDevServerEnv, createTimeSkippingEnv } from './helpers/temporal-env';
import { eventually } from './helpers/eventually';
import { stopTestWorkers, TestWorkers } from './helpers/test-workers';
import { freePort } from '../src/net/free-port';
import { echoViaActivity, sleepForDays } from './fixtures/workflows';

let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  bundle = await bundleWorkflows(require.resolve('./fixtures/workflows'));
});

afterEach(stopTestWorkers);

describe('time-skipping test server', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await createTimeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  test('when a workflow sleeps three days, then it completes in seconds of wall time', async () => {
    const taskQueue = `harness-${randomUUID()}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle });
    const wallStart = Date.now();
    const serverStart = await env.currentTimeMs();

    const result = await new TestWorkers(env.client).run([worker], () =>
      env.client.workflow.execute(sleepForDays, { args: [3], taskQueue, workflowId: `sleep-${randomUUID()}` }),
    );

    const wallMs = Date.now() - wallStart;
    const serverElapsedMs = (await env.currentTimeMs()) - serverStart;
    console.log(`time-skipping: 3 days of workflow time in ${wallMs} ms of wall time`);
    expect(result).toBe('slept 3 days');
    expect(env.supportsTimeSkipping).toBe(true);
    expect(serverElapsedMs).toBeGreaterThanOrEqual(3 * 24 * 3600 * 1000);
    expect(wallMs).toBeLessThan(30_000);
  });
});

describe('dev server', () => {
  let env: TestWorkflowEnvironment;
  let uiPort: number;
  beforeAll(async () => {
    uiPort = await freePort();
    env = await createDevServerEnv({ ui: true, uiPort });
  });
  afterAll(async () => {
    await env?.teardown();
  });

  test('when a workflow runs end to end, then a visibility list query finds it', async () => {
    const taskQueue = `harness-${randomUUID()}`;
    const workflowId = `echo-${randomUUID()}`;
    const workers = new TestWorkers(env.client);
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: workers.endWithTheTest({ echo: async (message: string) => `echo: ${message}` }),
    });

    const result = await workers.run([worker], () =>
      env.client.workflow.execute(echoViaActivity, { args: ['hello'], taskQueue, workflowId }),
    );
    expect(result).toBe('echo: hello');
    expect(env.supportsTimeSkipping).toBe(false);

    // Visibility is eventually consistent.
    const query = `WorkflowId = "${workflowId}" AND ExecutionStatus = "Completed"`;
    const found = await eventually(
      async () => {
        const ids: string[] = [];
        for await (const execution of env.client.workflow.list({ query })) ids.push(execution.workflowId);
        return ids;
      },
      (ids) => ids.length > 0,
    );
    expect(found).toEqual([workflowId]);
  });

  test('when the dev server runs with its UI, then the Temporal Web UI answers on loopback', async () => {
    const page = await fetch(`http://127.0.0.1:${uiPort}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    // The UI's API proxies to the frontend, which may still be warming up.
    const namespaces = await eventually(
      async () => {
        const response = await fetch(`http://127.0.0.1:${uiPort}/api/v1/namespaces`);
        return { status: response.status, body: await response.text() };
      },
      (response) => response.status === 200,
    );
    expect(namespaces.status).toBe(200);
    expect(namespaces.body).toContain('"default"');
  });
});
