/**
 * `npm run --silent encryption-key [id]`: prints a new entry for PAYLOAD_ENCRYPTION_KEYS,
 * `<id>:<base64 of 32 random bytes>`. Put it first to encrypt with it; keep the old entries after
 * it for as long as histories written under them are kept (README, "Payload encryption").
 */
import { KEY_ID_PATTERN, newKeyEntry } from '../src/temporal/encryption';

const id = process.argv[2];
if (id !== undefined && !KEY_ID_PATTERN.test(id)) {
  console.error(`a key ID is 1-64 letters, digits, ".", "_" or "-": ${JSON.stringify(id)} is not`);
  process.exit(2);
}
console.log(newKeyEntry(id));
