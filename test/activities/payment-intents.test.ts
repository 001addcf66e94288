import Stripe from 'stripe';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe/emulator';
import { cancelPaymentIntent, capturePaymentIntent, retrievePaymentIntentSummary } from '../../src/stripe/payment-intents';
import { createStripeClient, parseStripeApiBase } from '../../src/stripe/sessions';

// The PaymentIntent port against the local emulator: what orders paid without Checkout will read,
// capture and release. Captures and cancels are idempotent by key, as at Stripe.
let emulator: StripeEmulator;
let stripe: Stripe;

beforeAll(async () => {
  emulator = await startStripeEmulator();
  stripe = createStripeClient('sk_test_payment_intents', parseStripeApiBase(emulator.url));
});

afterAll(async () => {
  await emulator?.close();
});

test('when a PaymentIntent is read, then its status, amount, order and capture deadline come back, and no customer data', async () => {
  emulator.putPaymentIntent({ id: 'pi_read1', amount: 4500, currency: 'eur', status: 'requires_capture', captureMethod: 'manual', metadata: { order_id: 'order_1' }, captureBefore: 1_900_000_000 });
  expect(await retrievePaymentIntentSummary(stripe, 'pi_read1')).toEqual({
    id: 'pi_read1',
    status: 'requires_capture',
    amount: 4500,
    amountCapturable: 4500,
    amountReceived: 0,
    currency: 'eur',
    captureMethod: 'manual',
    livemode: false,
    orderId: 'order_1',
    captureBefore: 1_900_000_000,
    lastPaymentError: null,
  });
  expect(emulator.requests.at(-1)).toMatch(/^GET \/v1\/payment_intents\/pi_read1\?expand/);
});

test('when a capture is retried with the same idempotency key, then the authorization is captured once and both calls get the same answer', async () => {
  emulator.putPaymentIntent({ id: 'pi_capture1', amount: 2000, currency: 'usd', status: 'requires_capture', captureMethod: 'manual' });
  const first = await capturePaymentIntent(stripe, 'pi_capture1', 'capture-pi_capture1');
  const retry = await capturePaymentIntent(stripe, 'pi_capture1', 'capture-pi_capture1');
  expect(first.status).toBe('succeeded');
  expect(retry).toEqual(first);
  expect(emulator.paymentIntents.get('pi_capture1')?.captures).toBe(1);
  // Another key on a captured PaymentIntent: Stripe refuses, and says why.
  await expect(capturePaymentIntent(stripe, 'pi_capture1', 'another-key')).rejects.toThrow(/could not be captured because it has a status of succeeded/);
});

test('when an authorization has expired, then Stripe refuses the capture with charge_expired_for_capture', async () => {
  emulator.putPaymentIntent({ id: 'pi_expired1', amount: 2000, currency: 'usd', status: 'requires_capture', captureMethod: 'manual', captureBefore: Math.floor(Date.now() / 1000) - 60 });
  await expect(capturePaymentIntent(stripe, 'pi_expired1', 'capture-pi_expired1')).rejects.toEqual(expect.objectContaining({ code: 'charge_expired_for_capture' }));
  expect(emulator.paymentIntents.get('pi_expired1')?.captures).toBeUndefined();
});

test('when an authorization is released, then the PaymentIntent is canceled once, and a captured one cannot be', async () => {
  emulator.putPaymentIntent({ id: 'pi_cancel1', amount: 2000, currency: 'usd', status: 'requires_capture', captureMethod: 'manual' });
  expect((await cancelPaymentIntent(stripe, 'pi_cancel1', 'cancel-pi_cancel1')).status).toBe('canceled');
  expect((await cancelPaymentIntent(stripe, 'pi_cancel1', 'cancel-pi_cancel1')).status).toBe('canceled');
  expect(emulator.paymentIntents.get('pi_cancel1')?.cancels).toBe(1);
  emulator.putPaymentIntent({ id: 'pi_cancel2', amount: 2000, currency: 'usd', status: 'succeeded' });
  await expect(cancelPaymentIntent(stripe, 'pi_cancel2', 'cancel-pi_cancel2')).rejects.toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
});

test('when the last attempt failed, then only its code is kept, not the message', async () => {
  emulator.putPaymentIntent({ id: 'pi_failed1', amount: 2000, currency: 'usd', status: 'requires_payment_method', lastPaymentError: 'card_declined', metadata: { order_id: 'order_2' } });
  const summary = await retrievePaymentIntentSummary(stripe, 'pi_failed1');
  expect(summary.lastPaymentError).toBe('card_declined');
  expect(JSON.stringify(summary)).not.toContain('declined.');
});
