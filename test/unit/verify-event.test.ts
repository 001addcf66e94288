import { createHmac } from 'node:crypto';
import Stripe from 'stripe';
import { SIGNATURE_TOLERANCE_SECONDS, verifyEvent } from '../../src/ingress/verify-event';

const SECRET = 'whsec_test_current';
const RETIRING = 'whsec_test_retiring';
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const nowSeconds = Math.floor(NOW / 1000);
const YEAR = 365 * 24 * 3600;

const payload = JSON.stringify({ id: 'evt_1', object: 'event', type: 'checkout.session.completed', livemode: false, data: { object: { id: 'cs_test_1' } } });
const body = Buffer.from(payload);

/** Signed by Stripe's own helper, at `timestamp` (seconds), so the test goes through real verification. */
const signed = (timestamp: number, secret = SECRET) => Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });

const verify = (header: string | undefined, options: { secrets?: string[]; raw?: Buffer } = {}) =>
  verifyEvent(Stripe.webhooks, { body: options.raw ?? body, header, secrets: options.secrets ?? [SECRET], now: NOW });

describe('verifyEvent', () => {
  test('when the tolerance is read, then it is the 300 s stripe-node uses for the past', () => {
    expect(SIGNATURE_TOLERANCE_SECONDS).toBe(300);
  });

  test.each([
    ['signed now', 0],
    ['signed 299 s ahead (clock skew)', 299],
    ['signed exactly the tolerance ahead', 300],
    ['signed 299 s ago', -299],
  ])('when %s, then the event is accepted', (_name, offset) => {
    const verified = verify(signed(nowSeconds + offset));
    expect(verified).toEqual({ event: JSON.parse(payload) });
  });

  test.each([
    ['signed 10 years ahead', 10 * YEAR],
    ['signed 301 s ahead', 301],
  ])('when %s, then it is refused: signature timestamp in the future', (_name, offset) => {
    expect(verify(signed(nowSeconds + offset))).toEqual({ refused: 'future', error: 'signature timestamp in the future' });
  });

  test('when signed 10 years ahead with a secret being rotated out, then it is refused as in the future too', () => {
    expect(verify(signed(nowSeconds + 10 * YEAR, RETIRING), { secrets: [SECRET, RETIRING] })).toEqual({ refused: 'future', error: 'signature timestamp in the future' });
  });

  test('when the header repeats `t=`, then the one the signature was checked with is the one judged', () => {
    // stripe-node signs and checks with the last `t=`; a harmless first one must not hide a future last one.
    const header = `t=${nowSeconds},${signed(nowSeconds + 10 * YEAR)}`;
    expect(verify(header)).toMatchObject({ refused: 'future' });
  });

  test.each([
    ['signed 301 s ago', -301],
    ['signed an hour ago (a replay)', -3600],
  ])('when %s, then it is refused as stale, as before', (_name, offset) => {
    expect(verify(signed(nowSeconds + offset))).toEqual({ refused: 'stale', error: 'stale signature: timestamp outside the tolerance' });
  });

  test('when the secrets rotate, then a signature by any of them is accepted', () => {
    expect(verify(signed(nowSeconds, RETIRING), { secrets: [SECRET, RETIRING] })).toEqual({ event: JSON.parse(payload) });
  });

  test('when a future timestamp carries a signature by another secret, then it is a mismatch, not news about the timestamp', () => {
    expect(verify(signed(nowSeconds + 10 * YEAR, 'whsec_someone_else'))).toEqual({ refused: 'signature_mismatch', error: 'signature does not match' });
  });

  test.each([
    ['no header', undefined, body, 'missing_header'],
    ['an empty header', '', body, 'missing_header'],
    ['an empty body', signed(nowSeconds), Buffer.alloc(0), 'empty_body'],
    ['a malformed header', 'garbage', body, 'malformed_header'],
    ['a signature by another secret', signed(nowSeconds, 'whsec_someone_else'), body, 'signature_mismatch'],
    ['a body altered after signing', signed(nowSeconds), Buffer.from(payload.replace('completed', 'expired')), 'signature_mismatch'],
  ])('when %s, then it is refused as before', (_name, header, raw, refused) => {
    expect(verify(header, { raw })).toMatchObject({ refused });
  });

  test('when a signed body is not JSON, then it is refused as not JSON', () => {
    const notJson = '{"id": "evt_1", ';
    const header = Stripe.webhooks.generateTestHeaderString({ payload: notJson, secret: SECRET, timestamp: nowSeconds });
    expect(verify(header, { raw: Buffer.from(notJson) })).toEqual({ refused: 'not_json', error: 'body is not valid JSON' });
  });

  test('when the timestamp is not a number but the signature over it matches, then it is refused as malformed (it would never expire)', () => {
    // stripe-node reads `t=abc` as NaN and signs over `NaN.<body>`; its past check never fires on NaN.
    const forever = `t=abc,v1=${createHmac('sha256', SECRET).update(`NaN.${payload}`).digest('hex')}`;
    expect(verify(forever)).toEqual({ refused: 'malformed_header', error: 'malformed Stripe-Signature header' });
  });
});
