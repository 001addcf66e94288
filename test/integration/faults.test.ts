/**
 * The bounded slice of `npm run faults` that runs in `npm test`: two fault kinds the cluster tests
 * do not already cover (Stripe in trouble under its read limit, the SMTP server down), 20 orders
 * each. The full suite (8 kinds, 100 orders each) is `npm run faults`.
 */
import { failures, runFaults } from '../../scripts/faults/run';

jest.setTimeout(600_000);

test('when Stripe misbehaves and the SMTP server goes down mid-burst, then nothing is lost, doubled or wrong', async () => {
  const result = await runFaults({ sessions: 20, kinds: ['smtp-down', 'stripe-trouble'], topologies: ['cluster'], log: () => undefined });

  expect(result.rows.map((row) => row.tried)).toEqual([20, 20]);
  // 20 orders: 12 cards and 5 delayed payments that succeed (fulfilled), 3 that fail (not).
  expect(result.rows.map((row) => row.fulfilled)).toEqual([17, 17]);
  expect(failures(result)).toEqual([]);
});
