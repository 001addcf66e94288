import Stripe from 'stripe';

/**
 * How far a signature's timestamp may be from now, either way. Stripe's own default for the past;
 * stripe-node checks only the past, so a signature made for a time ten years ahead (with a leaked
 * secret) would stay valid for ten years. The same bound forward closes that.
 */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** Why a webhook was refused, before anything in it was looked at. Each is a 400. */
export type EventRefusal =
  | 'missing_header'
  | 'empty_body'
  | 'malformed_header'
  | 'signature_mismatch'
  | 'stale'
  | 'future'
  | 'not_json'
  | 'thin_event';

export type Verification = { event: Stripe.Event } | { refused: EventRefusal; error: string };

const REFUSALS: Record<EventRefusal, string> = {
  missing_header: 'missing Stripe-Signature header',
  empty_body: 'empty body',
  malformed_header: 'malformed Stripe-Signature header',
  signature_mismatch: 'signature does not match',
  stale: 'stale signature: timestamp outside the tolerance',
  future: 'signature timestamp in the future',
  not_json: 'body is not valid JSON',
  thin_event:
    'a thin event (object "v2.core.event", from an event destination) is not served yet: send snapshot events to this endpoint (a webhook endpoint, or an event destination with snapshot payloads)',
};

const refuse = (refused: EventRefusal): Verification => ({ refused, error: REFUSALS[refused] });

/**
 * The verified event, or why it was refused. Any configured secret may have signed it (rotation).
 * Pure: `now` (milliseconds) is the time the signature is judged against, both ways.
 */
export function verifyEvent(
  webhooks: Stripe['webhooks'],
  input: { body: Buffer; header: string | undefined; secrets: string[]; now: number },
): Verification {
  const { body, header, secrets, now } = input;
  if (!header) return refuse('missing_header');
  if (body.length === 0) return refuse('empty_body');
  let refusal: EventRefusal = 'signature_mismatch';
  for (const secret of secrets) {
    let event: Stripe.Event;
    try {
      event = webhooks.constructEvent(body, header, secret, SIGNATURE_TOLERANCE_SECONDS, undefined, now);
    } catch (err) {
      if (err instanceof SyntaxError) return refuse('not_json');
      // stripe-node refuses these once the signature checks out: a thin event (an event destination's).
      if (!(err instanceof Stripe.errors.StripeSignatureVerificationError) && /thin event/i.test((err as Error).message)) return refuse('thin_event');
      if (!(err instanceof Stripe.errors.StripeSignatureVerificationError)) throw err;
      if (/tolerance/i.test(err.message)) refusal = 'stale';
      else if (/Unable to extract/i.test(err.message)) return refuse('malformed_header');
      continue;
    }
    // Signed with our secret: only now does its timestamp say anything.
    const signedAt = signedAtSeconds(header);
    if (!Number.isFinite(signedAt)) return refuse('malformed_header'); // `t=abc`: stripe-node would let it through forever
    if (signedAt - Math.floor(now / 1000) > SIGNATURE_TOLERANCE_SECONDS) return refuse('future');
    return { event };
  }
  return refuse(refusal);
}

/** The `t=` of a Stripe-Signature header, read as stripe-node reads it for the signature (the last `t=` counts). */
function signedAtSeconds(header: string): number {
  let timestamp = NaN;
  for (const item of header.split(',')) {
    const [key, value] = item.split('=');
    if (key === 't') timestamp = parseInt(value ?? '', 10);
  }
  return timestamp;
}
