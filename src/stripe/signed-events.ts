import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';

/**
 * Stripe-shaped Checkout events, signed the way Stripe signs them (stripe-node's
 * generateTestHeaderString), for the offline demo, the benchmark and the tests: they go through
 * the ingress's real signature verification, never around it.
 */
export function checkoutEventPayload(type: string, sessionId: string, eventId = `evt_${randomBytes(12).toString('hex')}`): string {
  return JSON.stringify({
    id: eventId,
    object: 'event',
    api_version: '2025-01-01',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    type,
    data: { object: { id: sessionId, object: 'checkout.session' } },
  });
}

export interface PostOptions {
  secret: string;
  /** Unix seconds the signature claims; default now. */
  timestamp?: number;
  /** Send this Stripe-Signature header instead of a computed one; null sends none. */
  header?: string | null;
}

/** POSTs `payload` to `${baseUrl}/webhook` exactly as Stripe does: raw JSON body and `Stripe-Signature`. */
export async function postSignedWebhook(
  baseUrl: string,
  payload: string,
  { secret, timestamp, header }: PostOptions,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const signature = header === undefined ? Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp }) : header;
  const response = await fetch(`${baseUrl}/webhook`, {
    method: 'POST',
    body: payload,
    headers: { 'content-type': 'application/json', ...(signature === null ? {} : { 'stripe-signature': signature }) },
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status: response.status, body: { text } };
  }
}
