import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import type { Duration } from '@temporalio/common';
import { checkoutEventSignal, type CheckoutEvent } from '../../workflows/definitions';
import { routeMoneyBack } from '../../workflows';
import { requireOrderKind, secondChance, type SecondChance } from '../orders/kinds';
import type { FulfillmentStore } from '../store/fulfillment-store';

/**
 * `already_settled`: the order's outcome is recorded and final; the event changes nothing.
 * `stopped`: the order ended `failed` (an operator canceled it, or what no retry can fix); only an
 * operator's `npm run redrive` runs it again (see `secondChance` in src/orders/kinds.ts).
 */
export type Delivery = 'accepted' | Exclude<SecondChance, 'reopen'>;

export interface FulfillmentStarterOptions {
  taskQueue: string;
  paymentDeadline: Duration;
  /** How long a start or signal may take before we give up and let Stripe retry. */
  timeoutMs: number;
  /** `npm run redrive`: an operator runs orders again whatever their record says (the workflow still never redoes a settled one). */
  redrive?: boolean;
}

/**
 * The only way into Temporal for webhooks, the landing page, the reconciler and redrive. Every call
 * returns once Temporal has durably accepted the start or signal, or throws, so the caller can
 * answer Stripe 2xx or 5xx truthfully. The order's ID names its kind, and the kind its workflow.
 */
export class FulfillmentStarter {
  constructor(
    private readonly client: Client,
    private readonly store: Pick<FulfillmentStore, 'getRecord'>,
    private readonly options: FulfillmentStarterOptions,
  ) {}

  /** One execution per order: the workflow ID is the order's ID, exactly (`cs_...` or `pi_...`). */
  private startOptions(id: string, workflowIdReusePolicy: WorkflowIdReusePolicy) {
    const kind = requireOrderKind(id);
    return {
      taskQueue: this.options.taskQueue,
      workflowId: id,
      args: kind.workflowInput(id, { paymentDeadline: this.options.paymentDeadline, redrive: this.options.redrive }),
      workflowIdReusePolicy,
      staticSummary: `${kind.label} ${id}`,
    };
  }

  /**
   * Starts the order's workflow with this event, or signals the one already running
   * (signal-with-start), so the order in which Stripe's events arrive does not matter.
   */
  async deliver(id: string, event: CheckoutEvent): Promise<Delivery> {
    return this.startOrReopen(id, (policy) => this.signalWithStart(id, policy, event));
  }

  private signalWithStart(id: string, policy: WorkflowIdReusePolicy, event: CheckoutEvent): Promise<unknown> {
    return this.client.workflow.signalWithStart(requireOrderKind(id).workflowType, {
      ...this.startOptions(id, policy),
      signal: checkoutEventSignal,
      signalArgs: [event] as [CheckoutEvent],
    });
  }

  /**
   * A refund or dispute of the order's payment: signals its running workflow (which settles it
   * once fulfillment is over), or runs the order again when its execution has closed (the new run
   * finds the record settled or failed and only settles the money). An event the record shows acted
   * on is `already_settled`.
   */
  async deliverMoneyBack(id: string, event: CheckoutEvent): Promise<Delivery> {
    const record = await this.store.getRecord(id);
    if (record?.view.eventIds.includes(event.id)) return 'already_settled';
    await this.withDeadline(() => this.signalWithStart(id, WorkflowIdReusePolicy.ALLOW_DUPLICATE, event));
    return 'accepted';
  }

  /**
   * A refund or dispute whose PaymentIntent our records do not know yet: a short workflow finds
   * its order at Stripe and delivers it there (one per event: a redelivery is a no-op).
   */
  async routeMoneyBack(paymentIntentId: string, event: CheckoutEvent): Promise<'routing' | 'routed_before'> {
    try {
      await this.withDeadline(() =>
        this.client.workflow.start(routeMoneyBack, {
          taskQueue: this.options.taskQueue,
          workflowId: `route-${event.id}`,
          args: [{ paymentIntentId, event }],
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
          staticSummary: `Find the order of ${paymentIntentId} for ${event.type}`,
        }),
      );
      return 'routing';
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return 'routed_before'; // a redelivery: routed (or routing) already
      throw err;
    }
  }

  /** The landing page, the reconciler and redrive: starts the order's workflow unless one is already running. */
  async ensureStarted(id: string): Promise<Delivery> {
    return this.startOrReopen(id, (policy) =>
      this.client.workflow.start(requireOrderKind(id).workflowType, {
        ...this.startOptions(id, policy),
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      }),
    );
  }

  /**
   * `checkout.session.expired`: tells a running workflow. A session we never recorded (abandoned
   * before anyone looked at it) starts nothing; one whose last run stopped waiting is run again,
   * so it ends `expired` instead of waiting forever.
   */
  async notify(sessionId: string, event: CheckoutEvent): Promise<Delivery | 'no_workflow'> {
    try {
      await this.withDeadline(() => this.client.workflow.getHandle(sessionId).signal(checkoutEventSignal, event));
      return 'accepted';
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    if (!(await this.store.getRecord(sessionId))) return 'no_workflow';
    return this.deliver(sessionId, event);
  }

  /** Whether the order's execution is running now (the stuck sweep leaves a running one alone). */
  async isRunning(id: string): Promise<boolean> {
    try {
      const described = await this.withDeadline(() => this.client.workflow.getHandle(id).describe());
      return described.status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /**
   * Starts (or signals) under the strictest reuse policy: a closed execution is never run again
   * without asking the record. Then the one rule for second chances decides (`secondChance`): a
   * settled or `failed` order stays as it is, one without a verdict runs again (the workflow checks
   * the record before doing anything, so nothing settled is ever redone).
   */
  private async startOrReopen(id: string, start: (policy: WorkflowIdReusePolicy) => Promise<unknown>): Promise<Delivery> {
    try {
      await this.withDeadline(() => start(WorkflowIdReusePolicy.REJECT_DUPLICATE));
      return 'accepted';
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    const chance = this.options.redrive ? 'reopen' : secondChance((await this.store.getRecord(id))?.view);
    if (chance !== 'reopen') return chance;
    await this.withDeadline(() => start(WorkflowIdReusePolicy.ALLOW_DUPLICATE));
    return 'accepted';
  }

  private withDeadline<T>(call: () => Promise<T>): Promise<T> {
    return this.client.withDeadline(Date.now() + this.options.timeoutMs, call);
  }
}
