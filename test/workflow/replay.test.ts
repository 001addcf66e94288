import fs from 'node:fs';
import path from 'node:path';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { bundleWorkflows } from '../../src/temporal/worker';
import { HISTORIES_DIR, readHistory } from '../helpers/histories';

/**
 * Every recorded history of every branch (test/fixtures/histories, refreshed by `npm run
 * histories:record`; older versions' histories in subdirectories) replays against today's workflow
 * code. A change that would break a waiting execution on deploy fails here, naming the history.
 */
function histories(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return histories(full);
    return entry.name.endsWith('.json') ? [full] : [];
  });
}

const recorded = histories(HISTORIES_DIR).map((file) => path.relative(HISTORIES_DIR, file));
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  bundle = await bundleWorkflows(require.resolve('../../workflows'));
});

test('there are recorded histories of every branch', () => {
  for (const branch of ['paid', 'delayed-then-succeeded', 'delayed-then-failed', 'open-then-completed', 'expired', 'deadline-reached', 'started-by-reconciler', 'reconciler-run-of-several-pages', 'continued-as-new-first-run', 'continued-as-new-last-run', 'refunded-after-fulfillment', 'refund-while-fulfilling', 'partial-refund-for-an-operator', 'refunded-before-fulfillment', 'dispute-lost', 'payment-intent-succeeded', 'payment-intent-processing-then-succeeded', 'payment-intent-failed-then-retried', 'payment-intent-manual-capture', 'payment-intent-out-of-stock', 'operator-canceled', 'failed-then-refunded', 'refund-of-a-record-without-its-payment', 'dispute-won', 'payment-intent-release-on-refused-capture', 'payment-intent-release-before-fulfillment', 'payment-intent-deadline-cut-mid-attempt', 'payment-intent-canceled-unpaid', 'payment-intent-owned-by-checkout', 'payment-intent-no-order', 'payment-intent-amount-mismatch', 'payment-intent-refund-of-a-settled-order']) {
    expect(recorded).toContain(`${branch}.json`);
  }
});

test.each(recorded)('when the history %s is replayed against today’s workflow code, then it replays without a nondeterminism error', async (file) => {
  const history = readHistory(path.join(HISTORIES_DIR, file));
  try {
    await Worker.runReplayHistory({ workflowBundle: bundle, replayName: file }, history);
  } catch (err) {
    throw new Error(`The recorded history ${file} no longer replays: a deploy would break executions like it. ${(err as Error).message}`);
  }
});
