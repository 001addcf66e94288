/**
 * `npm run demo`: the whole product, offline, with no Stripe account. Starts the local Stripe
 * emulator and the full stack on embedded defaults (state in .data/demo), then plays two purchases
 * with correctly signed webhooks: one paid by card, one by a delayed method (bank debit) that
 * succeeds later. Leaves everything running so you can look around; Ctrl-C stops it.
 * `npm run demo -- --exit` stops after the purchases (for scripts).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { startStack, type Stack } from '../src/stack';
import { startStripeEmulator, type EmulatedSession } from '../src/stripe/emulator';
import { checkoutEventPayload, postSignedWebhook } from '../src/stripe/signed-events';
import type { FulfillmentStatus } from '../workflows/definitions';

// Demo-only credentials: the emulator accepts any well-formed test key, and we sign our own events.
const DEMO_SECRET_KEY = 'sk_test_demo';
const DEMO_WEBHOOK_SECRET = 'whsec_demo';

function session(kind: 'card' | 'bank_debit'): EmulatedSession {
  const id = `cs_test_demo${kind === 'card' ? 'Card' : 'Bank'}${randomBytes(6).toString('hex')}`;
  return {
    id,
    status: 'complete',
    paymentStatus: kind === 'card' ? 'paid' : 'unpaid',
    currency: 'usd',
    customerEmail: 'jenny.rosen@example.com',
    customerName: 'Jenny Rosen',
    lineItems: [
      { id: `li_${id}_1`, description: 'Annual membership', quantity: 1, priceId: 'price_membership', productId: 'prod_membership', unitAmount: 12000 },
      { id: `li_${id}_2`, description: 'Welcome mug', quantity: 2, priceId: 'price_mug', productId: 'prod_mug', unitAmount: 1500 },
    ],
  };
}

async function sendEvent(stack: Stack, type: string, sessionId: string): Promise<void> {
  const response = await postSignedWebhook(stack.ingress!.url, checkoutEventPayload(type, sessionId), { secret: DEMO_WEBHOOK_SECRET });
  console.log(`  → ${type} for ${sessionId}: HTTP ${response.status}`);
  if (response.status !== 200) throw new Error(`webhook refused: ${JSON.stringify(response.body)}`);
}

async function waitFor(stack: Stack, sessionId: string, status: FulfillmentStatus): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const record = await stack.services.store.getRecord(sessionId);
    if (record?.view.status === status) {
      console.log(`  ✓ ${sessionId} is ${status}`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`${sessionId} did not reach ${status} (now ${record?.view.status ?? 'nothing'})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function main(): Promise<void> {
  const emulator = await startStripeEmulator(Number(process.env.DEMO_STRIPE_PORT ?? 0));
  const config = loadConfig({
    ...process.env,
    DATA_DIR: process.env.DATA_DIR ?? path.join('.data', 'demo'),
    STRIPE_SECRET_KEY: DEMO_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET: DEMO_WEBHOOK_SECRET,
    STRIPE_API_BASE: emulator.url,
    MERCHANT_NAME: process.env.MERCHANT_NAME ?? 'Demo Shop',
  });
  console.log(`Stripe emulator: ${emulator.url}`);
  const stack = await startStack(config, { ingress: true, worker: true, host: config.host });
  const stopAll = async () => {
    await stack.stop();
    await emulator.close();
  };

  try {
    const card = session('card');
    const bank = session('bank_debit');
    emulator.put(card);
    emulator.put(bank);

    console.log('\n1. A customer pays by card: Stripe sends checkout.session.completed (payment_status=paid)');
    await sendEvent(stack, 'checkout.session.completed', card.id);
    await waitFor(stack, card.id, 'fulfilled');

    console.log('\n2. A customer pays by bank debit: completed, but the funds take days');
    await sendEvent(stack, 'checkout.session.completed', bank.id);
    await waitFor(stack, bank.id, 'awaiting_payment');
    console.log('   ...days later the debit clears: Stripe sends checkout.session.async_payment_succeeded');
    emulator.put({ ...bank, paymentStatus: 'paid' });
    await sendEvent(stack, 'checkout.session.async_payment_succeeded', bank.id);
    await waitFor(stack, bank.id, 'fulfilled');

    const base = stack.ingress!.url;
    const ui = stack.temporal.embedded?.uiUrl;
    const outbox = fs.existsSync(config.email.outboxDir) ? fs.readdirSync(config.email.outboxDir) : [];
    console.log(`
Look around:
  Landing page:  ${base}/after-checkout?session_id=${card.id}
  Status API:    ${base}/api/fulfillments/${bank.id}
${ui ? `  Temporal UI:   ${ui}/namespaces/${stack.temporal.namespace}/workflows?query=${encodeURIComponent('FulfillmentStatus = "fulfilled"')}\n` : ''}  Receipts:      ${config.email.outboxDir} (${outbox.length} .eml file${outbox.length === 1 ? '' : 's'})`);
  } catch (err) {
    await stopAll();
    throw err;
  }

  if (process.argv.includes('--exit')) {
    await stopAll();
    return;
  }
  console.log('\nEverything keeps running; Ctrl-C stops it.');
  const stop = () => void stopAll().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${(err as Error).message}`);
  process.exit(1);
});
