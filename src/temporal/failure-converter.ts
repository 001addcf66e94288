import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Loaded by path (`failureConverterPath`) in the workers, the clients and the workflow sandbox:
 * a failure's message and stack trace travel as an encoded attribute, which the payload codec
 * encrypts, and Temporal keeps only "Encoded failure" in clear.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
