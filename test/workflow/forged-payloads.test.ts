import { randomBytes } from 'node:crypto';
import { CompleteAsyncError, Context } from '@temporalio/activity';
import { Client } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities';
import { registerSearchAttributes } from '../../src/temporal/search-attributes';
import { AesGcmCodec, BINDING_METADATA, dataConverterFor, ENCRYPTED_ENCODING, STRICT_FAILURE_CONVERTER_PATH } from '../../src/temporal/encryption';
import { checkoutEventSignal, fulfillmentQuery, type CheckoutEvent, type SessionSummary } from '../../workflows/definitions';
import { fulfillCheckout } from '../../workflows';
import { eventually } from '../helpers/eventually';
import { fakeActivities } from '../helpers/fake-activities';
import { stopTestWorkers, uniqueTaskQueue, withFulfillmentWorkers } from '../helpers/test-workers';
import { bundleWorkflows, createTimeSkippingEnv } from '../helpers/temporal-env';
import { session } from '../fixtures/sessions';

/*
 * Issue 20, item 1 (the payload half): with PAYLOAD_ENCRYPTION=on, someone who can write to
 * Temporal but holds no key cannot decide an order. The product's workers and client run with
 * the strict codec and failure converter; the forger is a client without them (the Temporal CLI,
 * or raw gRPC), who can read histories and reach running activities' task tokens.
 */

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
const KEYS = [{ id: 'k1', secret: randomBytes(32) }];
const dataConverter = dataConverterFor({ keys: KEYS, encrypt: true, strict: true })!;
// sdk-core's workflow task failures are encoded with no serialization context: read them as the codec server does.
const display = new AesGcmCodec(KEYS, { forDisplay: true });
let client: Client; // the product's
let forger: Client; // no key

beforeAll(async () => {
  [env, bundle] = await Promise.all([
    createTimeSkippingEnv(),
    bundleWorkflows(require.resolve('../../workflows'), { failureConverterPath: STRICT_FAILURE_CONVERTER_PATH }),
  ]);
  await registerSearchAttributes(env.connection, 'default');
  client = new Client({ connection: env.connection, namespace: 'default', dataConverter });
  forger = env.client;
});

afterAll(async () => {
  await env?.teardown();
});

let taskQueue: string;
beforeEach(() => {
  taskQueue = uniqueTaskQueue('forged-test');
});
afterEach(stopTestWorkers);

function withWorker<T>(activities: Activities, fn: () => Promise<T>): Promise<T> {
  return withFulfillmentWorkers({ env, bundle, activities, taskQueue, dataConverter }, fn);
}

function start(sessionId: string) {
  return client.workflow.start(fulfillCheckout, { taskQueue, workflowId: sessionId, args: [{ sessionId }], workflowIdReusePolicy: 'REJECT_DUPLICATE' });
}

const failed = (id = 'evt_failed'): CheckoutEvent => ({ id, type: 'checkout.session.async_payment_failed' });
const completed = (id = 'evt_completed'): CheckoutEvent => ({ id, type: 'checkout.session.completed' });

async function historyOf(workflowId: string): Promise<temporal.api.history.v1.IHistoryEvent[]> {
  return (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
}

/** The messages of the workflow task failures in a history, opened with our key (the worker encodes them). */
async function taskFailures(workflowId: string): Promise<string[]> {
  const messages: string[] = [];
  for (const event of await historyOf(workflowId)) {
    const failure = event.workflowTaskFailedEventAttributes?.failure;
    if (!failure) continue;
    if (failure.encodedAttributes) {
      const [opened] = await display.decode([failure.encodedAttributes as Payload]);
      messages.push(String(defaultPayloadConverter.fromPayload<{ message: string }>(opened!).message));
    } else {
      messages.push(failure.message ?? '');
    }
  }
  return messages;
}

const waitForTaskFailure = (workflowId: string) => eventually(() => taskFailures(workflowId), (messages) => messages.length > 0, { timeoutMs: 20_000 });

function stripeWith(initial: SessionSummary) {
  const stripe = { session: initial, current: () => stripe.session };
  return stripe;
}

/** Fakes whose `retrieveSession` hangs for an outside completion (as a running Stripe read looks to a forger) and hands out its task tokens. */
function withHangingStripeRead(activities: Activities) {
  const tokens: Uint8Array[] = [];
  const hanging: Activities = {
    ...activities,
    async retrieveSession() {
      tokens.push(Context.current().info.taskToken);
      throw new CompleteAsyncError();
    },
  };
  return { activities: hanging, tokens };
}

test('when payloads are encrypted, then a paid session still round-trips: started, queried and fulfilled, every payload bound to its workflow', async () => {
  const paid = session();
  const { activities, calls } = fakeActivities(stripeWith(paid));

  const [result, queried] = await withWorker(activities, async () => {
    const handle = await start(paid.id);
    return [await handle.result(), await handle.query(fulfillmentQuery)] as const;
  });

  expect(result.status).toBe('fulfilled');
  expect(queried.status).toBe('fulfilled');
  expect(calls.fulfillLineItems).toHaveLength(1);
  const started = (await historyOf(paid.id))[0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
  expect(Buffer.from(started.metadata!.encoding!).toString()).toBe(ENCRYPTED_ENCODING);
  expect(JSON.parse(Buffer.from(started.metadata![BINDING_METADATA]!).toString())).toEqual({ kind: 'workflow', namespace: 'default', workflowId: paid.id });
});

test('when a plaintext payment-failed signal is sent to an encrypted worker, then its workflow task fails naming why, and the record stays', async () => {
  const unpaid = session({ paymentStatus: 'unpaid' });
  const { activities, calls } = fakeActivities(stripeWith(unpaid));

  await withWorker(activities, async () => {
    const handle = await start(unpaid.id);
    await eventually(() => handle.query(fulfillmentQuery), (view) => view.status === 'awaiting_payment');
    await forger.workflow.getHandle(unpaid.id).signal(checkoutEventSignal, failed());

    const failures = await waitForTaskFailure(unpaid.id);
    expect(failures[0]).toMatch(/refused a payload that is not encrypted \(encoding "json\/plain"\) for workflow "cs_test_\w+"/);
  });

  expect(calls.statuses).toEqual(['received', 'awaiting_payment']);
  expect(calls.confirmEvent).toEqual([]);
  expect(calls.emailPaymentFailed).toHaveLength(0);
});

test("when a ciphertext is copied from workflow A's history into a signal to workflow B, then B refuses it and decides nothing", async () => {
  const a = session({ paymentStatus: 'unpaid' });
  const b = session({ paymentStatus: 'unpaid' });
  const stripe = { current: () => b };
  const sessions = new Map([a, b].map((s) => [s.id, s]));
  const { activities, calls } = fakeActivities(stripe);
  const both: Activities = { ...activities, retrieveSession: async (sessionId: string) => sessions.get(sessionId)! };

  await withWorker(both, async () => {
    for (const s of [a, b]) {
      const handle = await start(s.id);
      await eventually(() => handle.query(fulfillmentQuery), (view) => view.status === 'awaiting_payment');
    }
    await client.workflow.getHandle(a.id).signal(checkoutEventSignal, completed('evt_for_a'));
    const signaled = await eventually(
      async () => (await historyOf(a.id)).find((event) => event.workflowExecutionSignaledEventAttributes),
      (event) => event !== undefined,
    );
    const copied = signaled!.workflowExecutionSignaledEventAttributes!.input!.payloads!;
    expect(Buffer.from(copied[0]!.metadata!.encoding!).toString()).toBe(ENCRYPTED_ENCODING);

    // Raw gRPC, as the CLI or any frontend client can: the payload's bytes exactly as A's history holds them.
    await forger.workflowService.signalWorkflowExecution({
      namespace: 'default',
      workflowExecution: { workflowId: b.id },
      signalName: checkoutEventSignal.name,
      input: { payloads: copied },
      identity: 'forger',
    });

    const failures = await waitForTaskFailure(b.id);
    expect(failures[0]).toContain(`refused a payload bound to workflow "${a.id}" in namespace "default" where one for workflow "${b.id}"`);
    expect(await taskFailures(a.id)).toEqual([]);
  });

  expect(calls.views.filter((view) => view.sessionId === b.id).map((view) => view.status)).toEqual(['received', 'awaiting_payment']);
});

test('when a running Stripe read is completed from outside with a plaintext "paid" session, then the workflow task fails and nothing is delivered', async () => {
  const open = session({ paymentStatus: 'unpaid' });
  const { activities: fakes, calls } = fakeActivities(stripeWith(open));
  const { activities, tokens } = withHangingStripeRead(fakes);

  await withWorker(activities, async () => {
    await start(open.id);
    await eventually(async () => tokens.length, (count) => count > 0);
    await forger.activity.complete(tokens[0]!, { ...open, paymentStatus: 'paid' });

    const failures = await waitForTaskFailure(open.id);
    expect(failures[0]).toMatch(/refused a payload that is not encrypted \(encoding "json\/plain"\) for activity "\d+" of workflow "cs_test_\w+"/);
  });

  expect(calls.fulfillLineItems).toHaveLength(0);
  expect(calls.emailReceipt).toHaveLength(0);
  expect(calls.statuses).toEqual(['received']);
});

test('when a running Stripe read is failed from outside as non-retryable, then the failure is refused and the order is not recorded failed', async () => {
  const open = session({ paymentStatus: 'unpaid' });
  const { activities: fakes, calls } = fakeActivities(stripeWith(open));
  const { activities, tokens } = withHangingStripeRead(fakes);

  await withWorker(activities, async () => {
    await start(open.id);
    await eventually(async () => tokens.length, (count) => count > 0);
    await forger.activity.fail(tokens[0]!, ApplicationFailure.nonRetryable('No such checkout.session', 'SessionNotFound'));

    const failures = await waitForTaskFailure(open.id);
    expect(failures[0]).toMatch(/refused an application failure of type "SessionNotFound" \(nonRetryable true\): its message is not encrypted/);
  });

  expect(calls.statuses).toEqual(['received']);
});
