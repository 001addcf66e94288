import {
  DefaultFailureConverter,
  type PayloadConverter,
  type ProtoFailure,
  type SerializationContext,
} from '@temporalio/common';

/**
 * Loaded by path (`failureConverterPath`) where `PAYLOAD_ENCRYPTION=on`, in the workers, the
 * clients and the workflow sandbox (so: no Node built-ins here). `permissive` loads the same
 * writer without the refusals (src/temporal/failure-converter.ts), so what it writes is read
 * whole after switching to `on`.
 *
 * A failure's kind, an application failure's type and `nonRetryable` travel in clear, beside the
 * encrypted message: anyone who can complete an activity could otherwise fail `retrieveSession`
 * with a made-up, non-retryable type and make the order `failed`, or fail `fulfillLineItems` with
 * a bare cancellation. So every failure we write repeats its kind (and an application failure its
 * type and retryability) inside its encoded attributes, which the codec encrypts and binds to the
 * activity or workflow, and on reading:
 * - an application failure without that copy is refused: ours always have it, and neither the
 *   server nor sdk-core makes application failures (theirs are timeouts, cancels, terminations,
 *   server failures, and the activity and child wrappers);
 * - one whose clear type or retryability differs from the encrypted copy is refused, and so is a
 *   failure whose clear kind differs from its copy's;
 * - an activity failure that the server says is final because of what the activity sent
 *   (retry state `NON_RETRYABLE_FAILURE`) must have a cause with the copy: a cancellation,
 *   termination, timeout or server failure sent from outside has none. The server's own timeouts
 *   and cancels come with other retry states (`TIMEOUT`, `MAXIMUM_ATTEMPTS_REACHED`,
 *   `CANCEL_REQUESTED`) and carry no copy.
 * A refusal throws: the workflow task fails, naming why, and the workflow decides nothing.
 */
const APPLICATION = 'application';
const KIND = 'kind';
/** temporal.api.enums.v1.RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE (the proto module is not loaded in the sandbox). */
const NON_RETRYABLE_FAILURE = 5;

interface EncodedAttributes {
  message?: unknown;
  stack_trace?: unknown;
  [KIND]?: string;
  [APPLICATION]?: { type: string; non_retryable: boolean };
}

export class FailureRefusedError extends Error {
  override name = 'FailureRefusedError';
}

const KINDS = [
  'applicationFailureInfo',
  'timeoutFailureInfo',
  'canceledFailureInfo',
  'terminatedFailureInfo',
  'serverFailureInfo',
  'resetWorkflowFailureInfo',
  'activityFailureInfo',
  'childWorkflowExecutionFailureInfo',
  'nexusOperationExecutionFailureInfo',
  'nexusHandlerFailureInfo',
] as const;

/** Which kind of failure this is, by the one `...FailureInfo` field it carries. */
function kindOf(failure: ProtoFailure): string {
  return KINDS.find((kind) => failure[kind]) ?? 'unknown';
}

export class VouchedFailureConverter extends DefaultFailureConverter {
  constructor(private readonly refuse: boolean) {
    super({ encodeCommonAttributes: true });
  }

  override errorToFailure(err: unknown, payloadConverter: PayloadConverter, context?: SerializationContext): ProtoFailure {
    const failure = super.errorToFailure(err, payloadConverter, context);
    if (failure.encodedAttributes) {
      const attrs = payloadConverter.fromPayload<EncodedAttributes>(failure.encodedAttributes, context);
      const info = failure.applicationFailureInfo;
      failure.encodedAttributes = payloadConverter.toPayload(
        {
          ...attrs,
          [KIND]: kindOf(failure),
          ...(info ? { [APPLICATION]: { type: info.type ?? '', non_retryable: Boolean(info.nonRetryable) } } : {}),
        },
        context,
      );
    }
    return failure;
  }

  override failureToError(failure: ProtoFailure, payloadConverter: PayloadConverter, context?: SerializationContext): Error {
    if (this.refuse) this.check(failure, payloadConverter, context);
    return super.failureToError(failure, payloadConverter, context);
  }

  private check(failure: ProtoFailure, payloadConverter: PayloadConverter, context?: SerializationContext): void {
    const attrs = failure.encodedAttributes ? payloadConverter.fromPayload<EncodedAttributes>(failure.encodedAttributes, context) : undefined;
    const kind = kindOf(failure);
    if (attrs?.[KIND] !== undefined && attrs[KIND] !== kind) {
      throw refused(`a failure of kind ${kind}: its encrypted copy says ${attrs[KIND]}, so its attributes belong to another failure`);
    }
    const info = failure.applicationFailureInfo;
    if (info) {
      const what = `an application failure of type "${info.type ?? ''}" (nonRetryable ${Boolean(info.nonRetryable)})`;
      if (!attrs) throw refused(`${what}: its message is not encrypted, so it was not written by our workers`);
      const copy = attrs[APPLICATION];
      if (!copy) throw refused(`${what}: its encrypted attributes do not vouch for its type: they belong to another failure`);
      if (copy.type !== (info.type ?? '') || copy.non_retryable !== Boolean(info.nonRetryable)) {
        throw refused(`${what}: its encrypted copy says type "${copy.type}", nonRetryable ${copy.non_retryable}: altered`);
      }
    }
    const activity = failure.activityFailureInfo;
    if (activity && Number(activity.retryState) === NON_RETRYABLE_FAILURE && failure.cause && !failure.cause.applicationFailureInfo) {
      const cause = failure.cause.encodedAttributes
        ? payloadConverter.fromPayload<EncodedAttributes>(failure.cause.encodedAttributes, context)
        : undefined;
      if (cause?.[KIND] !== kindOf(failure.cause)) {
        throw refused(
          `a final failure of activity ${activity.activityType?.name ?? '?'} caused by a ${kindOf(failure.cause)} that our workers did not write ` +
            '(the server makes its own timeouts and cancels with another retry state)',
        );
      }
    }
  }
}

function refused(what: string): FailureRefusedError {
  return new FailureRefusedError(`refused ${what}; with PAYLOAD_ENCRYPTION=on only failures written by our workers are accepted`);
}

export const failureConverter = new VouchedFailureConverter(true);
