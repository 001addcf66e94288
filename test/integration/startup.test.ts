import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { StripeEmulator } from '../../src/stripe/emulator';
import { StartupError } from '../../src/config';
import { registerSearchAttributes } from '../../src/temporal/search-attributes';
import { startSmtpServer } from '../helpers/smtp-server';
import { startSurroundings, startTestStack, type ProductSurroundings } from '../helpers/stack';

let surroundings: ProductSurroundings;
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let emulator: StripeEmulator;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;

beforeAll(async () => {
  // A cluster where `npm run temporal:setup` was never run: no custom search attributes.
  surroundings = await startSurroundings({ searchAttributes: false });
  ({ env, bundle, emulator, smtp } = surroundings);
}, 120_000);

afterAll(async () => {
  await surroundings?.stop();
});

test('when the search attributes are not registered, then the worker refuses to start with one line naming what to run', async () => {
  const attempt = startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle });

  await expect(attempt).rejects.toThrow(StartupError);
  const error = (await attempt.catch((err: unknown) => err)) as Error;
  expect(error.message).toMatch(/^Search attributes FulfillmentStatus, PaymentStatus, AmountTotal, Currency, Livemode are not registered/);
  expect(error.message).toContain('npm run temporal:setup');
  expect(error.message).not.toContain('\n');

  // The operator runs temporal:setup (the same registration), and the worker starts.
  expect(await registerSearchAttributes(env.connection, 'default')).toHaveLength(5);
  const stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle });
  expect(stack.workers.map((worker) => worker.getState())).toEqual(['RUNNING', 'RUNNING']);
  await stack.stop();
});
