import { ApplicationFailure, Context } from '@temporalio/activity';
import Stripe from 'stripe';
import type {
  FulfilledItem,
  FulfillmentView,
  LineItemSummary,
  SessionSummary,
} from '../workflows/definitions';
import type { Mailer } from '../src/email/mailer';
import { renderPaymentFailed, renderReceipt, type RenderedEmail } from '../src/email/render';
import type { Fulfiller } from '../src/fulfillment/fulfiller';
import { retrieveSessionSummary, SESSION_ID_PATTERN } from '../src/stripe/sessions';
import type { EmailKind, FulfillmentStore } from '../src/store/fulfillment-store';

export interface ActivityDeps {
  stripe: Stripe;
  store: FulfillmentStore;
  fulfiller: Fulfiller;
  mailer: Mailer;
  /** Shown in emails, and the domain of their Message-IDs. */
  merchantName: string;
  emailDomain: string;
}

/**
 * The activities of `fulfillCheckout`, built from their dependencies: the worker passes real
 * clients, tests pass their own. Workflows use `ReturnType<typeof createActivities>` as the type.
 */
export function createActivities(deps: ActivityDeps) {
  const { stripe, store, fulfiller, mailer } = deps;

  /** `sent`: the customer has this email, from this attempt or an earlier one. */
  async function sendOnce(kind: EmailKind, session: SessionSummary, render: () => RenderedEmail): Promise<{ sent: boolean }> {
    if (!session.customerEmail) {
      Context.current().log.warn('No customer email on the session; nothing sent', { sessionId: session.id, kind });
      return { sent: false };
    }
    // At most once as far as our records tell: a crash between sending and recording may resend,
    // with the same Message-ID so mail systems can recognise the duplicate.
    if (await store.emailSent(session.id, kind)) return { sent: true }; // by an earlier attempt
    const messageId = `<${kind}.${session.id}@${deps.emailDomain}>`;
    await mailer.send({ to: session.customerEmail, messageId, ...render() });
    await store.recordEmail(session.id, kind, messageId, session.customerEmail);
    return { sent: true };
  }

  return {
    /** retrieve-session: the session with all its line items, as a small summary. */
    async retrieveSession(sessionId: string): Promise<SessionSummary> {
      if (!SESSION_ID_PATTERN.test(sessionId)) {
        throw ApplicationFailure.nonRetryable(`Not a Checkout Session ID: ${JSON.stringify(sessionId)}`, 'InvalidSessionId');
      }
      try {
        return await retrieveSessionSummary(stripe, sessionId);
      } catch (err) {
        throw classifyStripeError(err, sessionId);
      }
    },

    /** fulfill-line-items: each line item exactly once, through the merchant's fulfiller. */
    async fulfillLineItems(input: { sessionId: string; lineItems: LineItemSummary[] }): Promise<FulfilledItem[]> {
      const fulfilled: FulfilledItem[] = [];
      for (const [index, lineItem] of input.lineItems.entries()) {
        const idempotencyKey = `${input.sessionId}:${lineItem.id}`;
        const isNew = await store.fulfillLineItemOnce(input.sessionId, lineItem, (tx) =>
          fulfiller.fulfillLineItem({ sessionId: input.sessionId, lineItem, idempotencyKey }, tx),
        );
        if (!isNew) Context.current().log.info('Line item already fulfilled', { idempotencyKey });
        fulfilled.push({ lineItemId: lineItem.id, description: lineItem.description, quantity: lineItem.quantity });
        Context.current().heartbeat(index);
      }
      return fulfilled;
    },

    /** email-receipt: the receipt, at most once per session. */
    async emailReceipt(input: { session: SessionSummary; fulfilled: FulfilledItem[] }): Promise<{ sent: boolean }> {
      return sendOnce('receipt', input.session, () => renderReceipt(input.session, input.fulfilled, deps.merchantName));
    },

    /** Tells the customer a delayed payment failed, at most once per session. */
    async emailPaymentFailed(session: SessionSummary): Promise<{ sent: boolean }> {
      return sendOnce('payment_failed', session, () => renderPaymentFailed(session, deps.merchantName));
    },

    /** record-status: the transition, in the session's history and current record. */
    async recordStatus(input: { view: FulfillmentView; seq: number }): Promise<void> {
      // (run, seq) names this transition: a retry of the same write is a no-op.
      const runId = Context.current().info.workflowExecution?.runId ?? 'unknown-run';
      await store.recordStatus(input.view, runId, input.seq);
    },

    /** The recorded state, checked before doing anything so a late duplicate never fulfills twice. */
    async loadRecord(sessionId: string): Promise<FulfillmentView | null> {
      return (await store.getRecord(sessionId))?.view ?? null;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

/** Stripe errors that retrying cannot fix become non-retryable failures with a type to branch on. */
function classifyStripeError(err: unknown, sessionId: string): unknown {
  if (err instanceof Stripe.errors.StripeInvalidRequestError) {
    if (err.code === 'resource_missing' || err.statusCode === 404) {
      return ApplicationFailure.nonRetryable(`Stripe does not know Checkout Session ${sessionId}`, 'SessionNotFound');
    }
    return ApplicationFailure.nonRetryable(`Stripe rejected the request: ${err.message}`, 'StripeInvalidRequest');
  }
  if (err instanceof Stripe.errors.StripeAuthenticationError || err instanceof Stripe.errors.StripePermissionError) {
    // The message names the problem, never the key.
    return ApplicationFailure.nonRetryable(`Stripe refused the API key: ${err.type}`, 'StripeAuthentication');
  }
  // Rate limits, connection errors and Stripe 5xx: retried with backoff by Temporal.
  return err;
}
