import { receivedView, type DisputeRecord, type FulfillmentView, type RefundRecord } from '../../workflows/definitions';
import { statusAfterMoneyBack } from '../../workflows/money-back';
import { moneyKeptAgain, stoppedByMoneyBack } from '../../workflows/order-steps';

// The order's status once a dispute closes, from the pure decision the workflows share.
const dispute = (outcome: DisputeRecord['outcome'], reversed: DisputeRecord['reversed']): DisputeRecord =>
  ({ id: 'dp_1', amount: 4500, currency: 'usd', status: outcome === 'won' ? 'won' : 'lost', outcome, reversed }) as DisputeRecord;

test('when a dispute that reversed the order is won on appeal, then the order stays dispute_lost: what went back stays back', () => {
  const reversed = [{ lineItemId: 'li_1', description: 'T-shirt', quantity: 2 }];
  expect(statusAfterMoneyBack('dispute_lost', [], [dispute('won', reversed)], 4500, true, true)).toBe('dispute_lost');
});

test('when a dispute lost before anything was fulfilled is won on appeal, then the order is failed (nothing shipped, the money kept: an operator redrives it), not dispute_lost', () => {
  // Before: a dispute won with an empty reversal still read as lost, and the order stayed dispute_lost, never fulfilled.
  expect(statusAfterMoneyBack('dispute_lost', [], [dispute('won', [])], 4500, true, false)).toBe('failed');
});

describe('money back before anything shipped, then the merchant’s again: whether a PaymentIntent order runs again', () => {
  const record = (overrides: Partial<FulfillmentView>): FulfillmentView => ({ ...receivedView('pi_1'), amountTotal: 4500, currency: 'usd', ...overrides });
  const lostFirst = 'a dispute was lost before it was fulfilled; nothing was fulfilled';
  const refundedFirst = 'refunded in full before it was fulfilled; nothing was fulfilled';
  const refund = (status: string): RefundRecord => ({ id: 're_1', amount: 4500, currency: 'usd', status, lineItems: null, reversed: [], note: null, emailed: true });

  test.each([
    ['a dispute lost before fulfilling', record({ status: 'dispute_lost', reason: lostFirst }), true],
    ['a refund in full before fulfilling', record({ status: 'refunded', reason: refundedFirst }), true],
    ['a failed record that says so (its money came back while it ended)', record({ status: 'failed', reason: lostFirst }), true],
    ['an operator canceled it', record({ status: 'dispute_lost', reason: `${lostFirst}; canceled by an operator` }), false],
    ['something was fulfilled', record({ status: 'dispute_lost', reason: lostFirst, fulfilled: [{ lineItemId: 'li_1', description: 'T-shirt', quantity: 1 }] }), false],
    ['it failed for another reason (the order source had no order)', record({ status: 'failed', reason: 'OrderNotFound: the order source has no order order_1' }), false],
  ])('when the record is %s, then stoppedByMoneyBack is %s', (_what, recorded, expected) => {
    expect(stoppedByMoneyBack(recorded)).toBe(expected);
  });

  test.each([
    ['the dispute won on appeal', record({ status: 'failed', disputes: [dispute('won', [])] }), true],
    ['the refund failed after it had succeeded', record({ status: 'failed', refunds: [refund('failed')] }), true],
    ['the dispute still lost', record({ status: 'dispute_lost', disputes: [dispute('lost', [])] }), false],
    ['a refund that still stands (running again would ship what it refunded)', record({ status: 'failed', disputes: [dispute('won', [])], refunds: [{ ...refund('succeeded'), amount: 1500 }] }), false],
  ])('when after settling it is %s, then moneyKeptAgain is %s', (_what, view, expected) => {
    expect(moneyKeptAgain(view)).toBe(expected);
  });
});
