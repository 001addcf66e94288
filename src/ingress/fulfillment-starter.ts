import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import type { Duration } from '@temporalio/common';
import { checkoutEventSignal, type CheckoutEvent, type FulfillCheckoutInput } from '../../workflows/definitions';
import { fulfillCheckout } from '../../workflows';

export type Delivery = 'accepted' | 'already_closed';

export interface FulfillmentStarterOptions {
  taskQueue: string;
  paymentDeadline: Duration;
  /** How long a start or signal may take before we give up and let Stripe retry. */
  timeoutMs: number;
}

/**
 * The ingress's only way into Temporal. Every call returns once Temporal has durably accepted the
 * start or signal, or throws, so the caller can answer Stripe 2xx or 5xx truthfully.
 */
export class FulfillmentStarter {
  constructor(
    private readonly client: Client,
    private readonly options: FulfillmentStarterOptions,
  ) {}

  private common(sessionId: string) {
    return {
      taskQueue: this.options.taskQueue,
      workflowId: sessionId, // the Checkout Session ID, exactly: one execution per session
      args: [{ sessionId, paymentDeadline: this.options.paymentDeadline }] as [FulfillCheckoutInput],
      // A closed execution that completed is never run again; one that failed or was terminated
      // may be re-driven (the database still prevents any second fulfillment).
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      staticSummary: `Checkout Session ${sessionId}`,
    };
  }

  /**
   * Starts the session's workflow with this event, or signals the one already running
   * (signal-with-start), so the order in which Stripe's events arrive does not matter.
   */
  async deliver(sessionId: string, event: CheckoutEvent): Promise<Delivery> {
    return this.acceptedUnlessClosed(() =>
      this.client.workflow.signalWithStart(fulfillCheckout, {
        ...this.common(sessionId),
        signal: checkoutEventSignal,
        signalArgs: [event],
      }),
    );
  }

  /** The landing page: starts the session's workflow unless one is already running. */
  async ensureStarted(sessionId: string): Promise<Delivery> {
    return this.acceptedUnlessClosed(() =>
      this.client.workflow.start(fulfillCheckout, {
        ...this.common(sessionId),
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      }),
    );
  }

  /** Tells a running workflow its session expired. Never starts one: an abandoned session leaves no work running. */
  async notify(sessionId: string, event: CheckoutEvent): Promise<'accepted' | 'no_workflow'> {
    try {
      await this.withDeadline(() => this.client.workflow.getHandle(sessionId).signal(checkoutEventSignal, event));
      return 'accepted';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'no_workflow';
      throw err;
    }
  }

  private async acceptedUnlessClosed(call: () => Promise<unknown>): Promise<Delivery> {
    try {
      await this.withDeadline(call);
      return 'accepted';
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already_closed';
      throw err;
    }
  }

  private withDeadline<T>(call: () => Promise<T>): Promise<T> {
    return this.client.withDeadline(Date.now() + this.options.timeoutMs, call);
  }
}
