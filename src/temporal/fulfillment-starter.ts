import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import type { Duration } from '@temporalio/common';
import {
  checkoutEventSignal,
  isSettledStatus,
  type CheckoutEvent,
  type FulfillCheckoutInput,
  type FulfillPaymentIntentInput,
} from '../../workflows/definitions';
import { checkSession, fulfillCheckout, fulfillPaymentIntent, routeMoneyBack } from '../../workflows';
import type { FulfillmentStore } from '../store/fulfillment-store';

/** `already_settled`: the session's outcome is recorded and final; the event changes nothing. */
export type Delivery = 'accepted' | 'already_settled';

export interface FulfillmentStarterOptions {
  taskQueue: string;
  paymentDeadline: Duration;
  /** How long a start or signal may take before we give up and let Stripe retry. */
  timeoutMs: number;
}

/**
 * The only way into Temporal for webhooks, the landing page and the reconciler. Every call
 * returns once Temporal has durably accepted the start or signal, or throws, so the caller can
 * answer Stripe 2xx or 5xx truthfully.
 */
export class FulfillmentStarter {
  constructor(
    private readonly client: Client,
    private readonly store: Pick<FulfillmentStore, 'getRecord'>,
    private readonly options: FulfillmentStarterOptions,
  ) {}

  private common(sessionId: string, workflowIdReusePolicy: WorkflowIdReusePolicy) {
    return {
      taskQueue: this.options.taskQueue,
      workflowId: sessionId, // the Checkout Session ID, exactly: one execution per session
      args: [{ sessionId, paymentDeadline: this.options.paymentDeadline }] as [FulfillCheckoutInput],
      workflowIdReusePolicy,
      staticSummary: `Checkout Session ${sessionId}`,
    };
  }

  /**
   * Starts the session's workflow with this event, or signals the one already running
   * (signal-with-start), so the order in which Stripe's events arrive does not matter.
   */
  async deliver(sessionId: string, event: CheckoutEvent): Promise<Delivery> {
    return this.startOrReopen(sessionId, (policy) => this.signalWithStart(sessionId, policy, event));
  }

  /**
   * Signal-with-start of an order's workflow: a Checkout Session's (`cs_...`), or an order paid by
   * PaymentIntent without Checkout, which has its own workflow under the PaymentIntent's ID.
   */
  private signalWithStart(id: string, policy: WorkflowIdReusePolicy, event: CheckoutEvent): Promise<unknown> {
    const signal = { signal: checkoutEventSignal, signalArgs: [event] as [CheckoutEvent] };
    if (!id.startsWith('pi_')) return this.client.workflow.signalWithStart(fulfillCheckout, { ...this.common(id, policy), ...signal });
    return this.client.workflow.signalWithStart(fulfillPaymentIntent, {
      taskQueue: this.options.taskQueue,
      workflowId: id,
      args: [{ paymentIntentId: id, paymentDeadline: this.options.paymentDeadline }] as [FulfillPaymentIntentInput],
      workflowIdReusePolicy: policy,
      staticSummary: `PaymentIntent order ${id}`,
      ...signal,
    });
  }

  /**
   * A refund or dispute of the session's payment: signals its running workflow (which settles it
   * once fulfillment is over), or runs the session again when its execution has closed (the new run
   * finds the record settled and only settles the money). An event the record shows acted on is
   * `already_settled`.
   */
  async deliverMoneyBack(sessionId: string, event: CheckoutEvent): Promise<Delivery> {
    const record = await this.store.getRecord(sessionId);
    if (record?.view.eventIds.includes(event.id)) return 'already_settled';
    await this.withDeadline(() => this.signalWithStart(sessionId, WorkflowIdReusePolicy.ALLOW_DUPLICATE, event));
    return 'accepted';
  }

  /**
   * A PaymentIntent made without Checkout whose metadata names an order: starts its workflow
   * (workflow ID = the PaymentIntent ID) with the event, or signals the running one; a settled
   * order is `already_settled`, as for sessions.
   */
  async deliverPaymentIntent(paymentIntentId: string, event: CheckoutEvent): Promise<Delivery> {
    return this.startOrReopen(paymentIntentId, (policy) => this.signalWithStart(paymentIntentId, policy, event));
  }

  /**
   * A refund or dispute whose PaymentIntent our records do not know yet: a short workflow finds
   * its Checkout Session at Stripe and delivers it there (one per event: a redelivery is a no-op).
   */
  async routeMoneyBack(paymentIntentId: string, event: CheckoutEvent): Promise<'routing'> {
    await this.withDeadline(() =>
      this.client.workflow.start(routeMoneyBack, {
        taskQueue: this.options.taskQueue,
        workflowId: `route-${event.id}`,
        args: [{ paymentIntentId, event }],
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        staticSummary: `Find the Checkout Session of ${paymentIntentId} for ${event.type}`,
      }),
    ).catch((err: unknown) => {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err; // routed before: done
    });
    return 'routing';
  }

  /** The landing page and the reconciler: starts the session's workflow unless one is already running. */
  async ensureStarted(sessionId: string): Promise<Delivery> {
    return this.startOrReopen(sessionId, (policy) =>
      this.client.workflow.start(fulfillCheckout, {
        ...this.common(sessionId, policy),
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

  /**
   * Whether Stripe knows the session, read through the rate-limited Stripe queue (`checkSession`),
   * so landing-page visits share the workers' read budget. Concurrent visits share one check.
   */
  async sessionExists(sessionId: string): Promise<boolean> {
    return this.withDeadline(() =>
      this.client.workflow.execute(checkSession, {
        taskQueue: this.options.taskQueue,
        workflowId: `check-${sessionId}`,
        args: [sessionId],
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        staticSummary: `Landing page: does Stripe know ${sessionId}?`,
      }),
    );
  }

  /**
   * Starts (or signals) under the strict reuse policy: a completed execution is not run again.
   * When it refuses, the record decides: only a settled outcome is final. A run that stopped
   * waiting for Stripe completed without a verdict, and this call must run the session again
   * (the workflow checks the record before doing anything, so nothing settled is ever redone).
   */
  private async startOrReopen(sessionId: string, start: (policy: WorkflowIdReusePolicy) => Promise<unknown>): Promise<Delivery> {
    try {
      await this.withDeadline(() => start(WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY));
      return 'accepted';
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    const record = await this.store.getRecord(sessionId);
    if (record && isSettledStatus(record.view.status)) return 'already_settled';
    await this.withDeadline(() => start(WorkflowIdReusePolicy.ALLOW_DUPLICATE));
    return 'accepted';
  }

  private withDeadline<T>(call: () => Promise<T>): Promise<T> {
    return this.client.withDeadline(Date.now() + this.options.timeoutMs, call);
  }
}
