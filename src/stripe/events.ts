import Stripe from 'stripe';

/**
 * Whether Stripe sent this event, of this type, about this object: read back by its ID, so neither a
 * signal forged with Temporal's CLI nor a webhook signed with a leaked secret can decide an order.
 * Stripe keeps events for 30 days; an event it does not know is not confirmed.
 */
export async function confirmEvent(stripe: Stripe, claimed: { eventId: string; type: string; objectId: string }): Promise<boolean> {
  if (!/^evt_[A-Za-z0-9_]+$/.test(claimed.eventId)) return false;
  try {
    const event = await stripe.events.retrieve(claimed.eventId);
    const object = event.data.object as { id?: unknown };
    return event.type === claimed.type && object.id === claimed.objectId;
  } catch (err) {
    if (err instanceof Stripe.errors.StripeInvalidRequestError && (err.code === 'resource_missing' || err.statusCode === 404)) return false;
    throw err;
  }
}
