import { createCipheriv, randomBytes } from 'node:crypto';
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  defaultPayloadConverter,
  TimeoutFailure,
  type Payload,
  type ProtoFailure,
  type SerializationContext,
} from '@temporalio/common';
import { decodeFailure, encodeFailure } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import { AesGcmCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA } from '../../src/temporal/encryption';
import { failureConverter as permissive } from '../../src/temporal/failure-converter';
import { failureConverter as strict } from '../../src/temporal/strict-failure-converter';

/*
 * An application failure's type and retryability travel in clear beside its encrypted message.
 * The strict failure converter repeats them inside the encrypted attributes and refuses a failure
 * whose clear fields were not written by our workers.
 */
const KEY = { id: 'k1', secret: Buffer.alloc(32, 3) };
const codec = new AesGcmCodec([KEY]);
const retrieveSession: SerializationContext = { type: 'activity', namespace: 'default', workflowId: 'cs_test_a', activityId: '2', isLocal: false };

/** A failure as our activity worker sends it: converted, then encoded by the codec; and as the workflow reads it back. */
async function written(error: Error): Promise<ProtoFailure> {
  return encodeFailure([codec], strict.errorToFailure(error, defaultPayloadConverter, retrieveSession), retrieveSession);
}
async function read(failure: ProtoFailure): Promise<Error> {
  return strict.failureToError(await decodeFailure([codec], failure, retrieveSession), defaultPayloadConverter, retrieveSession);
}
/** Encrypted as the release before binding did: the key ID alone as additional data. */
function legacyCodec([payload]: Payload[]): Payload {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', KEY.secret, iv);
  cipher.setAAD(Buffer.from(KEY.id));
  const plain = temporal.api.common.v1.Payload.encode(payload!).finish();
  return {
    metadata: { encoding: Buffer.from(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: Buffer.from(KEY.id), 'encryption-cipher': Buffer.from('AES256-GCM') },
    data: Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]),
  };
}

test('when our worker fails an activity, then the failure reads back whole, its type and retryability vouched for', async () => {
  const failure = await written(ApplicationFailure.nonRetryable('Stripe refused the key', 'StripeConfigurationError'));
  expect(failure.message).toBe('Encoded failure');
  const error = (await read(failure)) as ApplicationFailure;
  expect(error).toBeInstanceOf(ApplicationFailure);
  expect([error.message, error.type, error.nonRetryable]).toEqual(['Stripe refused the key', 'StripeConfigurationError', true]);
});

test('when a failure\'s clear type or retryability is changed, then it is refused: a retryable failure cannot be made final', async () => {
  const failure = await written(ApplicationFailure.retryable('Stripe timed out', 'StripeConnectionError'));
  const final = { ...failure, applicationFailureInfo: { ...failure.applicationFailureInfo, nonRetryable: true } };
  await expect(read(final)).rejects.toThrow(/refused an application failure of type "StripeConnectionError" \(nonRetryable true\): its encrypted copy says .* nonRetryable false: altered/);
  const renamed = { ...failure, applicationFailureInfo: { ...failure.applicationFailureInfo, type: 'SessionNotFound' } };
  await expect(read(renamed)).rejects.toThrow(/its encrypted copy says type "StripeConnectionError"/);
});

test('when an application failure has no encrypted attributes (the CLI, another SDK), then it is refused', async () => {
  const forged: ProtoFailure = { message: 'No such checkout.session', applicationFailureInfo: { type: 'SessionNotFound', nonRetryable: true } };
  await expect(read(forged)).rejects.toThrow(/its message is not encrypted, so it was not written by our workers/);
});

test('when a failure was written in the first, unbound format, then strict mode refuses it: its attributes would vouch for any type', async () => {
  // What the release before binding wrote: the key ID alone as additional data, opened in any workflow.
  const oldAttrs = legacyCodec([defaultPayloadConverter.toPayload({ message: 'some old retryable failure', stack_trace: '' })]);
  const forged: ProtoFailure = { message: 'Encoded failure', applicationFailureInfo: { type: 'InvalidSessionId', nonRetryable: true }, encodedAttributes: oldAttrs };
  await expect(read(forged)).rejects.toThrow(/refused a payload of the first, unbound encryption format/);

  // A cancellation's attributes (no application copy) moved onto a made-up application failure.
  const cancelled = await written(new CancelledFailure('cancelled'));
  const moved = { ...cancelled, canceledFailureInfo: undefined, applicationFailureInfo: { type: 'SessionNotFound', nonRetryable: true } };
  await expect(read(moved)).rejects.toThrow(/its encrypted copy says canceledFailureInfo/);
  const bare = await encodeFailure([codec], { message: 'Encoded failure', encodedAttributes: defaultPayloadConverter.toPayload({ message: 'x', stack_trace: '' }), applicationFailureInfo: { type: 'SessionNotFound', nonRetryable: true } }, retrieveSession);
  await expect(read(bare)).rejects.toThrow(/do not vouch for its type/);
});

test('when a failure was written under PAYLOAD_ENCRYPTION=permissive, then it reads whole after switching to on', async () => {
  const permissiveCodec = new AesGcmCodec([KEY], { strict: false });
  const failure = await encodeFailure(
    [permissiveCodec],
    permissive.errorToFailure(ApplicationFailure.nonRetryable('gave up', 'FulfillmentRefused'), defaultPayloadConverter, retrieveSession),
    retrieveSession,
  );
  const error = (await read(failure)) as ApplicationFailure;
  expect([error.message, error.type, error.nonRetryable]).toEqual(['gave up', 'FulfillmentRefused', true]);
  // Permissive reads what strict refuses (a failure in clear, written before encryption).
  const clear: ProtoFailure = { message: 'old', applicationFailureInfo: { type: 'SessionNotFound', nonRetryable: true } };
  expect(permissive.failureToError(await decodeFailure([permissiveCodec], clear, retrieveSession), defaultPayloadConverter, retrieveSession)).toBeInstanceOf(ApplicationFailure);
});

describe('an activity failure the server made final because of what was sent (retry state NON_RETRYABLE_FAILURE)', () => {
  /** What the workflow reads: the server wraps the activity's failure. */
  const wrapped = (cause: ProtoFailure, retryState: number): ProtoFailure => ({
    message: 'Activity task failed',
    activityFailureInfo: { activityType: { name: 'fulfillLineItems' }, activityId: '2', retryState },
    cause,
  });
  const NON_RETRYABLE_FAILURE = 5;
  const forgedCauses: Record<string, ProtoFailure> = {
    cancellation: { message: 'forged', canceledFailureInfo: {} },
    termination: { message: 'forged', terminatedFailureInfo: {} },
    'server failure': { message: 'forged', serverFailureInfo: { nonRetryable: true } },
    timeout: { message: 'forged', timeoutFailureInfo: { timeoutType: 3 } },
    reset: { message: 'forged', resetWorkflowFailureInfo: {} },
    'failure of no kind': { message: 'forged' },
  };

  test.each(Object.entries(forgedCauses))('when its cause is a %s sent from outside (no encrypted copy), then it is refused', async (_, cause) => {
    await expect(read(wrapped(cause, NON_RETRYABLE_FAILURE))).rejects.toThrow(/refused a final failure of activity fulfillLineItems caused by a \w+ that our workers did not write/);
  });

  test("when its cause is one our worker wrote, of any kind, then it is read; the server's own timeouts and cancels keep their retry states", async () => {
    const ours = (await read(wrapped(await written(new CancelledFailure('worker shutting down')), NON_RETRYABLE_FAILURE))) as ActivityFailure;
    expect(ours.cause).toBeInstanceOf(CancelledFailure);
    const timedOut = (await read(wrapped({ message: 'activity timeout', timeoutFailureInfo: { timeoutType: 3 } }, 2 /* TIMEOUT */))) as ActivityFailure;
    expect(timedOut.cause).toBeInstanceOf(TimeoutFailure);
    const cancelled = (await read(wrapped({ message: 'cancelled', canceledFailureInfo: {} }, 7 /* CANCEL_REQUESTED */))) as ActivityFailure;
    expect(cancelled.cause).toBeInstanceOf(CancelledFailure);
  });
});
