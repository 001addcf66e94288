import { decide } from '../../workflows/decide';
import type { CheckoutEventType } from '../../workflows/definitions';
import { session } from '../fixtures/sessions';

const events = (...types: CheckoutEventType[]) => new Set(types);

describe('decide', () => {
  test('when Stripe says complete and paid, then fulfill, whatever events say', () => {
    expect(decide(session({ paymentStatus: 'paid' }), events('checkout.session.async_payment_failed')).kind).toBe('fulfill');
  });
  test('when complete and no payment is required, then fulfill', () => {
    expect(decide(session({ paymentStatus: 'no_payment_required' }), events()).kind).toBe('fulfill');
  });
  test('when the session is open but already reads no_payment_required, then await checkout: nothing was completed', () => {
    expect(decide(session({ status: 'open', paymentStatus: 'no_payment_required' }), events()).kind).toBe('await_checkout');
    expect(decide(session({ status: 'open', paymentStatus: 'no_payment_required' }), events('checkout.session.completed')).kind).toBe(
      'await_checkout',
    );
  });
  test('when complete but unpaid, then await the payment', () => {
    expect(decide(session({ paymentStatus: 'unpaid' }), events()).kind).toBe('await_payment');
  });
  test('when a success event arrived but Stripe still reads unpaid, then keep awaiting: only Stripe’s read fulfills', () => {
    expect(decide(session({ paymentStatus: 'unpaid' }), events('checkout.session.async_payment_succeeded')).kind).toBe('await_payment');
  });
  test('when the failure event arrived for a complete, unpaid session, then the payment failed', () => {
    expect(decide(session({ paymentStatus: 'unpaid' }), events('checkout.session.async_payment_failed')).kind).toBe('payment_failed');
  });
  test('when the session is open, then await checkout', () => {
    expect(decide(session({ status: 'open', paymentStatus: 'unpaid' }), events()).kind).toBe('await_checkout');
  });
  test('when Stripe says expired, then expired; an expired event alone only wakes the workflow to read again', () => {
    expect(decide(session({ status: 'expired', paymentStatus: 'unpaid' }), events()).kind).toBe('expired');
    expect(decide(session({ status: 'open', paymentStatus: 'unpaid' }), events('checkout.session.expired')).kind).toBe('await_checkout');
    expect(decide(session({ paymentStatus: 'unpaid' }), events('checkout.session.expired')).kind).toBe('await_payment');
  });
});
