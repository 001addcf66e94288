import type { DisputeRecord } from '../../workflows/definitions';
import { statusAfterMoneyBack } from '../../workflows/money-back';

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
