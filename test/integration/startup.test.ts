import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

test('when the stack starts on a data directory others can read, then the directory and everything in it, PGlite’s files included, are its owner’s alone', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'startup-private-'));
  fs.mkdirSync(path.join(dataDir, 'outbox'));
  fs.writeFileSync(path.join(dataDir, 'outbox', 'receipt.eml'), 'To: jenny@example.com'); // left by an older version
  for (const [entry, mode] of [['.', 0o755], ['outbox', 0o755], ['outbox/receipt.eml', 0o644]] as const) fs.chmodSync(path.join(dataDir, entry), mode);
  await registerSearchAttributes(env.connection, 'default');

  const stack = await startTestStack(env, { emulatorUrl: emulator.url, smtpUrl: smtp.url, workflowBundle: bundle, dataDir });
  try {
    const modes = new Map<string, string>([['.', (fs.statSync(dataDir).mode & 0o777).toString(8)]]);
    for (const entry of fs.readdirSync(dataDir, { recursive: true }) as string[]) {
      const stat = fs.lstatSync(path.join(dataDir, entry));
      modes.set(entry, `${stat.isDirectory() ? 'dir' : 'file'} ${(stat.mode & 0o777).toString(8)}`);
    }
    expect(modes.get('.')).toBe('700');
    expect([...modes.keys()].filter((entry) => entry.startsWith(`pglite${path.sep}pg_wal${path.sep}`)).length).toBeGreaterThan(0);
    const open = [...modes].filter(([entry, mode]) => entry !== '.' && mode !== 'dir 700' && mode !== 'file 600');
    expect(open).toEqual([]);
  } finally {
    await stack.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
