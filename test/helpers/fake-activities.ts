import type { Activities } from '../../activities';
import type { FulfillmentView, SessionSummary } from '../../workflows/definitions';

/**
 * Activities for workflow tests, typed as the real ones so a drift fails to compile. The session
 * Stripe returns is whatever `stripe` says at the moment of the call, so a test can change it.
 */
export function fakeActivities(stripe: { current: () => SessionSummary }, recorded: FulfillmentView | null = null) {
  const calls = {
    retrieveSession: 0,
    fulfillLineItems: [] as Parameters<Activities['fulfillLineItems']>[0][],
    emailReceipt: [] as Parameters<Activities['emailReceipt']>[0][],
    emailPaymentFailed: [] as SessionSummary[],
    statuses: [] as string[],
    /** Every recorded view, in order, as copies: the last is what the database would hold. */
    views: [] as FulfillmentView[],
  };
  const activities: Activities = {
    async retrieveSession() {
      calls.retrieveSession++;
      return stripe.current();
    },
    async sessionExists() {
      return true;
    },
    async fulfillLineItems(input) {
      calls.fulfillLineItems.push(input);
      return input.lineItems.map((item) => ({ lineItemId: item.id, description: item.description, quantity: item.quantity }));
    },
    async emailReceipt(input) {
      calls.emailReceipt.push(input);
      return { sent: true };
    },
    async emailPaymentFailed(session) {
      calls.emailPaymentFailed.push(session);
      return { sent: true };
    },
    async recordStatus({ view }) {
      calls.statuses.push(view.status);
      calls.views.push(structuredClone(view));
    },
    async listCompletedSessions() {
      return { sessions: [], hasMore: false };
    },
    async reconcileSessions() {
      return { settled: 0, started: 0, resumed: 0, woken: 0 };
    },
    async redriveStuckSessions() {
      return 0;
    },
    async loadRecord() {
      return recorded;
    },
  };
  return { activities, calls };
}
