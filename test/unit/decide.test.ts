import { decide } from '../../workflows/decide';
import type { CheckoutEventType } from '../../workflows/definitions';
import { session } from '../fixtures/sessions';

const events = (...types: CheckoutEventType[]) => new Set(types);

describe('decide', () => {
  test('when Stripe says paid, then fulfill, whatever events say', () => {
    expect(decide(session({ paymentStatus: 'paid' }), events('checkout.session.async_payment_failed')).kind).toBe('fulfill');
  });
  test('when no payment is required, then fulfill', () => {
    expect(decide(session({ paymentStatus: 'no_payment_required' }), events()).kind).toBe('fulfill');
  });
  test('when complete but unpaid, then await the payment', () => {
    expect(decide(session({ paymentStatus: 'unpaid' }), events()).kind).toBe('await_payment');
  });
  test('when a verified success event arrived before Stripe shows paid, then fulfill', () => {
    expect(decide(session({ paymentStatus: 'unpaid' }), events('checkout.session.async_payment_succeeded')).kind).toBe('fulfill');
  });
  test('when the failure event arrived, then the payment failed', () => {
    expect(decide(session({ paymentStatus: 'unpaid' }), events('checkout.session.async_payment_failed')).kind).toBe('payment_failed');
  });
  test('when the session is open, then await checkout', () => {
    expect(decide(session({ status: 'open', paymentStatus: 'unpaid' }), events()).kind).toBe('await_checkout');
  });
  test('when the session or an event says expired, then expired', () => {
    expect(decide(session({ status: 'expired', paymentStatus: 'unpaid' }), events()).kind).toBe('expired');
    expect(decide(session({ status: 'open', paymentStatus: 'unpaid' }), events('checkout.session.expired')).kind).toBe('expired');
  });
});
