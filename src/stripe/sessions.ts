import Stripe from 'stripe';
import { budgetedHttpClient, type RequestBudget } from './request-budget';
import type { LineItemSummary, PaymentStatus, SessionMode, SessionStatus, SessionSummary } from '../../workflows/definitions';

export interface StripeApiBase {
  protocol: 'http' | 'https';
  host: string;
  port: number;
}

/** `STRIPE_API_BASE` such as `http://127.0.0.1:12111` (stripe-mock or a local emulator), parsed for stripe-node. */
export function parseStripeApiBase(url: string): StripeApiBase {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`unsupported protocol ${parsed.protocol}`);
  const protocol = parsed.protocol === 'http:' ? 'http' : 'https';
  return { protocol, host: parsed.hostname, port: parsed.port ? Number(parsed.port) : protocol === 'http' ? 80 : 443 };
}

/**
 * `budget`: every request takes its turn from it first (see request-budget.ts); unlimited if
 * omitted (tests). `timeoutMs`: how long one request may take (default 20 s).
 */
export function createStripeClient(secretKey: string, apiBase?: StripeApiBase, { budget, timeoutMs = 20_000 }: { budget?: RequestBudget; timeoutMs?: number } = {}): Stripe {
  return new Stripe(secretKey, {
    ...(budget ? { httpClient: budgetedHttpClient(budget) } : {}),
    // Temporal retries the activity with backoff; stripe-node retrying underneath would hide that.
    maxNetworkRetries: 0,
    timeout: timeoutMs,
    appInfo: { name: 'checkout-fulfillment' },
    ...(apiBase ?? {}),
  });
}


const PAGE_SIZE = 100;

/**
 * The session with `line_items` expanded, as Stripe's fulfillment guide asks; when the expanded
 * list has more pages (sessions can carry hundreds of items), every page is fetched.
 */
export async function retrieveSessionSummary(stripe: Stripe, sessionId: string): Promise<{ summary: SessionSummary; contact: CustomerContact }> {
  const session = await stripe.checkout.sessions.retrieve(sessionId, { expand: ['line_items'] });
  requireAnswerFor(sessionId, session.id);
  let items: Stripe.LineItem[] = session.line_items?.data ?? [];
  if (!session.line_items || session.line_items.has_more) {
    items = [];
    for await (const item of stripe.checkout.sessions.listLineItems(sessionId, { limit: PAGE_SIZE })) items.push(item);
  }
  const summary: SessionSummary = {
    id: session.id,
    status: (session.status ?? 'open') as SessionStatus,
    paymentStatus: session.payment_status as PaymentStatus,
    mode: session.mode as SessionMode,
    livemode: session.livemode,
    currency: session.currency,
    amountSubtotal: session.amount_subtotal,
    amountTotal: session.amount_total,
    expiresAt: session.expires_at,
    paymentIntentId: typeof session.payment_intent === 'string' ? session.payment_intent : (session.payment_intent?.id ?? null),
    lineItems: items.map(toLineItemSummary),
  };
  const contact = { email: session.customer_details?.email ?? session.customer_email ?? null, name: session.customer_details?.name ?? null };
  return { summary, contact };
}

/** Who to write to: personal data, kept in the app's database and never in Temporal. */
export interface CustomerContact {
  email: string | null;
  name: string | null;
}

function toLineItemSummary(item: Stripe.LineItem): LineItemSummary {
  const product = item.price?.product;
  return {
    id: item.id,
    description: item.description ?? '',
    // Null for metered prices: never guess a count Stripe does not give.
    quantity: item.quantity ?? null,
    priceId: item.price?.id ?? null,
    productId: typeof product === 'string' ? product : (product?.id ?? null),
    amountSubtotal: item.amount_subtotal,
    amountTotal: item.amount_total,
    currency: item.currency,
  };
}

/**
 * Fails (retried, deciding nothing) when Stripe's answer is about another object than the one
 * asked for: never Stripe's behaviour, so a misrouted API base or a proxy in between. Our payloads
 * are bound to the workflow that asked; this keeps a wrong answer from being bound there too.
 */
export function requireAnswerFor(asked: string, answered: string): void {
  if (answered !== asked) throw new Error(`Stripe answered for ${JSON.stringify(answered)} when asked for ${asked}; check STRIPE_API_BASE`);
}
