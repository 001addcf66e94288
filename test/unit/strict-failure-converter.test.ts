import { ApplicationFailure, defaultPayloadConverter, type ProtoFailure, type SerializationContext } from '@temporalio/common';
import { decodeFailure, encodeFailure } from '@temporalio/common/lib/internal-non-workflow';
import { AesGcmCodec, OPENED_FORMAT_METADATA } from '../../src/temporal/encryption';
import { failureConverter as strict } from '../../src/temporal/strict-failure-converter';

/*
 * An application failure's type and retryability travel in clear beside its encrypted message.
 * The strict failure converter repeats them inside the encrypted attributes and refuses a failure
 * whose clear fields were not written by our workers.
 */
const codec = new AesGcmCodec([{ id: 'k1', secret: Buffer.alloc(32, 3) }]);
const retrieveSession: SerializationContext = { type: 'activity', namespace: 'default', workflowId: 'cs_test_a', activityId: '2', isLocal: false };

/** A failure as our activity worker sends it: converted, then encoded by the codec; and as the workflow reads it back. */
async function written(error: Error): Promise<ProtoFailure> {
  return encodeFailure([codec], strict.errorToFailure(error, defaultPayloadConverter, retrieveSession), retrieveSession);
}
async function read(failure: ProtoFailure): Promise<Error> {
  return strict.failureToError(await decodeFailure([codec], failure, retrieveSession), defaultPayloadConverter, retrieveSession);
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

test('when a failure was written before the copy existed (first payload format), then it is read; a bound one without the copy is not', async () => {
  const legacy = strict.failureToError(
    {
      message: 'Encoded failure',
      applicationFailureInfo: { type: 'StripeConfigurationError', nonRetryable: true },
      encodedAttributes: { ...defaultPayloadConverter.toPayload({ message: 'old', stack_trace: '' }), metadata: { ...defaultPayloadConverter.toPayload({}).metadata, [OPENED_FORMAT_METADATA]: Buffer.from('1') } },
    },
    defaultPayloadConverter,
  ) as ApplicationFailure;
  expect([legacy.message, legacy.type]).toEqual(['old', 'StripeConfigurationError']);

  // A cancellation's attributes (no copy) moved onto a made-up application failure.
  const cancelled = await encodeFailure([codec], { message: 'Encoded failure', encodedAttributes: defaultPayloadConverter.toPayload({ message: 'cancelled', stack_trace: '' }), canceledFailureInfo: {} }, retrieveSession);
  const forged = { ...cancelled, canceledFailureInfo: undefined, applicationFailureInfo: { type: 'SessionNotFound', nonRetryable: true } };
  await expect(read(forged)).rejects.toThrow(/do not vouch for its type/);
});
