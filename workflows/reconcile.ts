import { ActivityFailure, continueAsNew, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { durationMs } from '../src/shared/duration';
import { ORDER_KINDS } from '../src/orders/kinds';
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
const EVERY_ORDER_KIND_PATCH = 'reconcile-every-order-kind';
// Disputes our records hold open, re-read one Stripe read each per run, this many per database page.
const OPEN_DISPUTES_PAGE = 20;
// A run hands over to a fresh one well before its history grows large (each dispute read adds a few events).
const HISTORY_LIMIT = 5000;
/**
 * What a run goes through, in order: each order kind's own Stripe listing (by its name), the refunds
 * and disputes of the look-back window, then the disputes our records hold open, whatever their age.
 */
const PHASES = [...ORDER_KINDS.map((kind) => kind.name), 'refunds', 'disputes', 'open_disputes'] as const;
type Phase = (typeof PHASES)[number];

/**
 * The reconciler, run by a Temporal Schedule: orders whose webhooks never arrived (Stripe gave up
 * after three days, the endpoint was disabled, a secret was wrong) are found through Stripe's API
 * and started under the same workflow ID and policies as the webhook path, so nothing can be
 * fulfilled twice. First it re-drives records stuck in a transient status; then it lists each
 * order kind's orders of the look-back window, one page per Stripe read on the rate-limited
 * queue; then the refunds and disputes of that window whose events were lost; then it re-reads
 * the disputes our records hold open. A phase that keeps failing is logged and skipped, never
 * allowed to stop the others.
 */
export async function reconcile(input: ReconcileInput): Promise<ReconcileReport> {
  if (!patched(EVERY_ORDER_KIND_PATCH)) return reconcileCheckoutSessionsOnly(input);
  const stripeReads = proxyActivities<Activities>({
    taskQueue: stripeTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '1 minute',
    retry: RETRY,
  });
  const { listOpenDisputes } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: RETRY });
  const report = input.report ?? emptyReconcileReport();
  const createdSince = input.createdSince ?? Math.floor((Date.now() - durationMs(input.lookback)) / 1000);
  const limit = Math.min(input.pageSize ?? MAX_PAGE_SIZE, MAX_PAGE_SIZE);
  const reconcileId = workflowInfo().workflowId;
  const listOrders = {
    listCompletedSessions: (startingAfter: string | undefined) =>
      stripeReads.listCompletedSessions({ createdSince, startingAfter, limit }).then((page) => ({ ...page, orders: page.sessions, lastId: page.sessions.at(-1)?.id ?? null })),
    listPaymentIntentOrders: (startingAfter: string | undefined) => stripeReads.listPaymentIntentOrders({ createdSince, startingAfter, limit }),
  };

  /** One page of one phase: acts on it and returns where the next page starts, or null when the phase is done. */
  async function reconcilePage(phase: Phase, startingAfter: string | undefined): Promise<string | null> {
    switch (phase) {
      case 'checkout_session':
      case 'payment_intent': {
        // Each order kind's own Stripe listing (src/orders/kinds.ts); the page's orders are then decided alike.
        report.pages++;
        const kind = ORDER_KINDS.find((candidate) => candidate.name === phase)!;
        const page = await listOrders[kind.reconcileListing](startingAfter);
        report.listed += page.orders.length;
        const found = await reconcileSessions({ sessions: page.orders, reconcileId });
        report.settled += found.settled;
        report.started += found.started;
        report.resumed += found.resumed;
        report.woken += found.woken;
        return page.hasMore && page.lastId ? page.lastId : null;
      }
      case 'refunds':
      case 'disputes': {
        // Every page, whatever the count: past one run's pages the next run continues (continue-as-new).
        report.pages++;
        const listed = await stripeReads.listRecentMoneyBack({ kind: phase, createdSince, startingAfter, limit });
        report.moneyBack += await reconcileMoneyBack({ kind: phase, items: listed.items, reconcileId });
        return listed.hasMore && listed.items.length > 0 ? listed.items[listed.items.length - 1]!.id : null;
      }
      case 'open_disputes': {
        // Disputes close weeks after they open, long after the look-back window: the ones our records
        // hold open are re-read at Stripe, whatever their age, one read (and one activity) each.
        const open = await listOpenDisputes({ startingAfter, limit: OPEN_DISPUTES_PAGE });
        const items = [];
        for (const dispute of open) {
          report.pages++;
          const now = await stripeReads.retrieveDispute(dispute);
          if (now) items.push(now);
        }
        report.moneyBack += await reconcileMoneyBack({ kind: 'disputes', items, reconcileId });
        return open.length === OPEN_DISPUTES_PAGE ? open[open.length - 1]!.disputeId : null;
      }
    }
  }

  // Stuck records first: no listing trouble may keep them from being re-driven. (Once per chain.)
  if (input.phase === undefined && input.startingAfter === undefined) {
    report.stuckRedriven = await redriveStuckSessions({ stuckAfterMs: durationMs(input.stuckAfter) });
  }

  // A chain that continued as new from the code before carries no phase: it was listing sessions.
  const firstPhase = (input.phase ?? PHASES[0]) as Phase;
  let pagesThisRun = 0;
  for (const phase of PHASES.slice(Math.max(0, PHASES.indexOf(firstPhase)))) {
    let startingAfter = phase === firstPhase ? input.startingAfter : undefined;
    try {
      for (;;) {
        if (pagesThisRun++ === PAGES_PER_RUN || workflowInfo().historyLength > HISTORY_LIMIT) {
          await continueAsNew<typeof reconcile>({ ...input, createdSince, phase, startingAfter, report });
        }
        const next = await reconcilePage(phase, startingAfter);
        if (next === null) break;
        startingAfter = next;
      }
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      log.error('Reconciler phase failed after its retries; the other phases go on, the next run tries again', { phase, error: String(err.cause ?? err) });
      (report.failedPhases ??= []).push(phase);
    }
  }

  log.info('Reconciled', { ...report });
  return report;
}

/** The reconciler before it knew every order kind: kept for the runs it started (replay). */
async function reconcileCheckoutSessionsOnly(input: ReconcileInput): Promise<ReconcileReport> {
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
