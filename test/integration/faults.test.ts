/**
 * The bounded slice of `npm run faults` that runs in `npm test`: three fault kinds the cluster tests
 * do not already cover (Stripe in trouble under its read limit, the SMTP server down, a worker
 * killed the moment Stripe receives a capture), 20 orders each. The full suite (every kind, 100
 * orders each, refunds among them) is `npm run faults`.
 */
import { failures, runFaults } from '../../scripts/faults/run';

jest.setTimeout(600_000);

test('when Stripe misbehaves, the SMTP server goes down and a worker dies mid-capture, then nothing is lost, doubled or wrong', async () => {
  const result = await runFaults({ sessions: 20, kinds: ['smtp-down', 'stripe-trouble', 'worker-kill-capture'], topologies: ['cluster'], log: () => undefined });

  expect(result.rows.map((row) => row.tried)).toEqual([20, 20, 20]);
  // Checkout: 12 cards and 5 delayed payments that succeed (fulfilled), 3 that fail (not). Capture:
  // 10 authorizations captured once, 4 PaymentIntents and 6 cards, all fulfilled.
  expect(result.rows.map((row) => row.fulfilled)).toEqual([17, 17, 20]);
  expect(failures(result)).toEqual([]);
});
