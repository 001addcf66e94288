import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';

/**
 * Stripe-shaped Checkout events, signed the way Stripe signs them (stripe-node's
 * generateTestHeaderString), for the offline demo, the benchmark and the tests: they go through
 * the ingress's real signature verification, never around it.
 */
export function checkoutEventPayload(type: string, sessionId: string, eventId?: string): string {
  return stripeEventPayload(type, { id: sessionId, object: 'checkout.session' }, eventId);
}

/** Any Stripe-shaped event about `object` (a charge, a source, a PaymentIntent...). */
export function stripeEventPayload(type: string, object: Record<string, unknown>, eventId = `evt_${randomBytes(12).toString('hex')}`): string {
  return JSON.stringify({
    id: eventId,
    object: 'event',
    api_version: '2025-01-01',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    type,
    data: { object },
  });
}

export interface PostOptions {
  secret: string;
  /** Unix seconds the signature claims; default now. */
  timestamp?: number;
  /** Send this Stripe-Signature header instead of a computed one; null sends none. */
  header?: string | null;
  /** Give up on an answer after this long (Stripe waits about 10 s). */
  timeoutMs?: number;
  /** Default application/json, as Stripe sends. */
  contentType?: string;
}

/** POSTs `payload` to `${baseUrl}/webhook` exactly as Stripe does: raw JSON body and `Stripe-Signature`. */
export async function postSignedWebhook(
  baseUrl: string,
  payload: string,
  options: PostOptions,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { secret, timestamp, header } = options;
  const signature = header === undefined ? Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp }) : header;
  const response = await fetch(`${baseUrl}/webhook`, {
    method: 'POST',
    body: payload,
    headers: { 'content-type': options.contentType ?? 'application/json', ...(signature === null ? {} : { 'stripe-signature': signature }) },
    signal: options.timeoutMs ? AbortSignal.timeout(options.timeoutMs) : undefined,
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status: response.status, body: { text } };
  }
}

export interface StripeLikeOptions {
  secret: string;
  /** Per attempt; an attempt that takes longer counts as failed, as at Stripe. */
  timeoutMs?: number;
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** What happened to one event: every attempt's answer (a status, `timeout` or `error`) and when it was sent, and whether one was 2xx. */
export interface StripeLikeDelivery {
  delivered: boolean;
  attempts: (number | 'timeout' | 'error')[];
  /** When each attempt was sent (ms since the epoch), in the same order. */
  sentAt: number[];
}

/**
 * Delivers an event the way Stripe does: signed afresh on each attempt, retried with exponential
 * backoff on any non-2xx answer, a timeout or a connection error, until one attempt is answered
 * 2xx. Bounded (Stripe's three days shrink to `maxAttempts`), for tests, the benchmark and faults.
 */
export async function deliverLikeStripe(baseUrl: string, payload: string, options: StripeLikeOptions): Promise<StripeLikeDelivery> {
  const { secret, timeoutMs = 10_000, maxAttempts = 15, initialBackoffMs = 250, maxBackoffMs = 5000 } = options;
  const attempts: StripeLikeDelivery['attempts'] = [];
  const sentAt: number[] = [];
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    sentAt.push(Date.now());
    try {
      const { status } = await postSignedWebhook(baseUrl, payload, { secret, timeoutMs });
      attempts.push(status);
      if (status >= 200 && status < 300) return { delivered: true, attempts, sentAt };
    } catch (err) {
      attempts.push((err as Error).name === 'TimeoutError' ? 'timeout' : 'error');
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(initialBackoffMs * 2 ** attempt, maxBackoffMs)));
  }
  return { delivered: false, attempts, sentAt };
}
