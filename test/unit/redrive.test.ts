import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

// `npm run redrive` takes either order kind's IDs and refuses anything else before reaching Temporal.
const redrive = (...ids: string[]) =>
  promisify(execFile)('npx', ['tsx', 'scripts/redrive.ts', ...ids], { env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9' } }).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );

test('when redrive is given something that is no order ID, then it exits 2 naming it and the two kinds it takes', async () => {
  const { code, stderr } = await redrive('cs_test_ok1', 'ch_123', 'pi_<script>');
  expect(code).toBe(2);
  expect(stderr).toContain('not order IDs: ch_123, pi_<script>');
  expect(stderr).toMatch(/Checkout Session ID.*PaymentIntent ID/);
});

test('when redrive is given no ID, then it prints its usage and exits 2', async () => {
  const { code, stderr } = await redrive();
  expect(code).toBe(2);
  expect(stderr).toContain('usage: npm run redrive -- cs_... | pi_...');
});
