import { continueAsNew, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { durationMs } from '../src/shared/duration';
import { emptyReconcileReport, stripeTaskQueue, type ReconcileInput, type ReconcileReport } from './definitions';

type Activities = ReturnType<typeof createActivities>;

const RETRY = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 } as const;
const { reconcileSessions, redriveStuckSessions, reconcileMoneyBack } = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry: RETRY });
const MAX_PAGE_SIZE = 100;
// Each page adds a handful of history events: start afresh well before history grows large.
const PAGES_PER_RUN = 200;
// Refunds and disputes listed per kind and run (100 each): more within the look-back window wait for the next run.
const MONEY_BACK_PAGES = 20;
const MONEY_BACK_PATCH = 'reconcile-money-back';

/**
 * The reconciler, run by a Temporal Schedule: orders whose webhooks never arrived (Stripe gave up
 * after three days, the endpoint was disabled, a secret was wrong) are found through Stripe's API
 * and started under the same workflow ID and policies as the webhook path, so nothing can be
 * fulfilled twice. It lists the Checkout Sessions completed within the look-back window, one page
 * per Stripe read on the rate-limited queue; then the refunds and disputes of that window whose
 * events were lost; then re-drives records stuck in a transient status.
 */
export async function reconcile(input: ReconcileInput): Promise<ReconcileReport> {
  const { listCompletedSessions, listRecentMoneyBack } = proxyActivities<Activities>({
    taskQueue: stripeTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '1 minute',
    retry: RETRY,
  });
  const report = input.report ?? emptyReconcileReport();
  const createdSince = input.createdSince ?? Math.floor((Date.now() - durationMs(input.lookback)) / 1000);
  const limit = Math.min(input.pageSize ?? MAX_PAGE_SIZE, MAX_PAGE_SIZE);
  let startingAfter = input.startingAfter;

  for (let pagesThisRun = 0; ; pagesThisRun++) {
    if (pagesThisRun === PAGES_PER_RUN) {
      await continueAsNew<typeof reconcile>({ ...input, createdSince, startingAfter, report });
    }
    const page = await listCompletedSessions({ createdSince, startingAfter, limit });
    report.pages++;
    report.listed += page.sessions.length;
    const found = await reconcileSessions({ sessions: page.sessions, reconcileId: workflowInfo().workflowId });
    report.settled += found.settled;
    report.started += found.started;
    report.resumed += found.resumed;
    report.woken += found.woken;
    if (!page.hasMore || page.sessions.length === 0) break;
    startingAfter = page.sessions[page.sessions.length - 1]!.id;
  }

  if (patched(MONEY_BACK_PATCH)) {
    for (const kind of ['refunds', 'disputes'] as const) {
      let after: string | undefined;
      for (let page = 0; page < MONEY_BACK_PAGES; page++) {
        const listed = await listRecentMoneyBack({ kind, createdSince, startingAfter: after, limit });
        report.pages++;
        report.moneyBack = (report.moneyBack ?? 0) + (await reconcileMoneyBack({ kind, items: listed.items, reconcileId: workflowInfo().workflowId }));
        if (!listed.hasMore || listed.items.length === 0) break;
        after = listed.items[listed.items.length - 1]!.id;
      }
    }
  }

  report.stuckRedriven = await redriveStuckSessions({ stuckAfterMs: durationMs(input.stuckAfter) });
  log.info('Reconciled', { ...report });
  return report;
}
