import {
  DefaultFailureConverter,
  type Payload,
  type PayloadConverter,
  type ProtoFailure,
  type SerializationContext,
} from '@temporalio/common';

/**
 * Loaded by path (`failureConverterPath`) where `PAYLOAD_ENCRYPTION=on`, in the workers, the
 * clients and the workflow sandbox (so: no Node built-ins here).
 *
 * A failure's type and `nonRetryable` travel in clear, beside the encrypted message: anyone who
 * can complete an activity could otherwise fail `retrieveSession` with a made-up, non-retryable
 * type and make the order `failed`. So the type and retryability of every application failure we
 * write are repeated inside its encoded attributes, which the codec encrypts and binds to the
 * activity or workflow, and on reading:
 * - an application failure without encoded attributes is refused: ours always have them, and
 *   neither the server nor sdk-core makes application failures (theirs are timeouts, cancels,
 *   terminations, server failures, and the activity and child wrappers);
 * - one whose clear type or retryability differs from the encrypted copy is refused;
 * - one whose attributes carry no copy is accepted only if they were opened from the first,
 *   unbound payload format (written before this check existed), like any such payload.
 * A refusal throws: the workflow task fails, naming why, and the workflow decides nothing.
 */
const APPLICATION = 'application';
const OPENED_FORMAT_METADATA = 'encryption-opened-format'; // src/temporal/encryption.ts; not imported: that module uses node:crypto

interface EncodedAttributes {
  message?: unknown;
  stack_trace?: unknown;
  [APPLICATION]?: { type: string; non_retryable: boolean };
}

export class FailureRefusedError extends Error {
  override name = 'FailureRefusedError';
}

class StrictFailureConverter extends DefaultFailureConverter {
  constructor() {
    super({ encodeCommonAttributes: true });
  }

  override errorToFailure(err: unknown, payloadConverter: PayloadConverter, context?: SerializationContext): ProtoFailure {
    const failure = super.errorToFailure(err, payloadConverter, context);
    const info = failure.applicationFailureInfo;
    if (info && failure.encodedAttributes) {
      const attrs = payloadConverter.fromPayload<EncodedAttributes>(failure.encodedAttributes, context);
      failure.encodedAttributes = payloadConverter.toPayload(
        { ...attrs, [APPLICATION]: { type: info.type ?? '', non_retryable: Boolean(info.nonRetryable) } },
        context,
      );
    }
    return failure;
  }

  override failureToError(failure: ProtoFailure, payloadConverter: PayloadConverter, context?: SerializationContext): Error {
    const info = failure.applicationFailureInfo;
    if (info) {
      const refuse = (why: string) =>
        new FailureRefusedError(
          `refused an application failure of type "${info.type ?? ''}" (nonRetryable ${Boolean(info.nonRetryable)}): ${why}; ` +
            'with PAYLOAD_ENCRYPTION=on only failures written by our workers are accepted',
        );
      if (!failure.encodedAttributes) throw refuse('its message is not encrypted, so it was not written by our workers');
      const attrs = payloadConverter.fromPayload<EncodedAttributes>(failure.encodedAttributes, context);
      const copy = attrs?.[APPLICATION];
      if (copy) {
        if (copy.type !== (info.type ?? '') || copy.non_retryable !== Boolean(info.nonRetryable)) {
          throw refuse(`its encrypted copy says type "${copy.type}", nonRetryable ${copy.non_retryable}: altered`);
        }
      } else if (openedFormat(failure.encodedAttributes) !== '1') {
        throw refuse('its encrypted attributes do not vouch for its type: they belong to another failure');
      }
    }
    return super.failureToError(failure, payloadConverter, context);
  }
}

function openedFormat(payload: Payload): string | undefined {
  const value = payload.metadata?.[OPENED_FORMAT_METADATA];
  return value ? String.fromCharCode(...value) : undefined; // ASCII; the sandbox has no Buffer
}

export const failureConverter = new StrictFailureConverter();
