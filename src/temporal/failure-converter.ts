import { VouchedFailureConverter } from './strict-failure-converter';

/**
 * Loaded by path (`failureConverterPath`) where `PAYLOAD_ENCRYPTION=permissive`, in the workers,
 * the clients and the workflow sandbox: it writes failures exactly as strict mode does (message
 * and stack trace in an encoded attribute, which the payload codec encrypts, with the encrypted
 * copy of the failure's kind and type), so switching to `on` later reads them whole; it refuses
 * nothing on reading.
 */
export const failureConverter = new VouchedFailureConverter(false);
