import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA, PayloadDecryptionError, type EncryptionKey } from '../../src/temporal/encryption';

const key = (id: string): EncryptionKey => ({ id, secret: Buffer.alloc(32, id) });
const CUSTOMER = { email: 'ada.lovelace@example.org', name: 'Ada Lovelace' };
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');

function payloadOf(value: unknown): Payload {
  return defaultPayloadConverter.toPayload(value);
}

test('when a payload is encoded, then neither its data nor its metadata is readable, and decoding gives it back whole', async () => {
  const codec = new AesGcmCodec([key('k1')]);
  const original = payloadOf(CUSTOMER);
  const [sealed] = await codec.encode([original]);
  expect(text(sealed!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
  expect(text(sealed!.metadata![KEY_ID_METADATA])).toBe('k1');
  expect(text(sealed!.data)).not.toContain('ada.lovelace');
  expect(text(sealed!.data)).not.toContain('json/plain');
  const [opened] = await codec.decode([sealed!]);
  expect(defaultPayloadConverter.fromPayload(opened!)).toEqual(CUSTOMER);
  expect(text(opened!.metadata!.encoding)).toBe('json/plain');
});

test('when the same value is encoded twice, then the ciphertexts differ (a fresh nonce each time)', async () => {
  const codec = new AesGcmCodec([key('k1')]);
  const [a, b] = await codec.encode([payloadOf(CUSTOMER), payloadOf(CUSTOMER)]);
  expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
});

test('when keys are rotated, then new payloads use the new key and payloads under the old one still decode', async () => {
  const [old] = await new AesGcmCodec([key('k1')]).encode([payloadOf('before')]);
  const rotated = new AesGcmCodec([key('k2'), key('k1')]);
  const [fresh] = await rotated.encode([payloadOf('after')]);
  expect(text(fresh!.metadata![KEY_ID_METADATA])).toBe('k2');
  const decoded = await rotated.decode([old!, fresh!]);
  expect(decoded.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual(['before', 'after']);
});

test('when a payload names a key that is no longer configured, then decoding says which key to add back', async () => {
  const [old] = await new AesGcmCodec([key('k1')]).encode([payloadOf('x')]);
  await expect(new AesGcmCodec([key('k2')]).decode([old!])).rejects.toThrow(
    new PayloadDecryptionError('payload encrypted with key "k1", which is not among PAYLOAD_ENCRYPTION_KEYS; add it back (after the new key) to read it'),
  );
});

test('when a ciphertext is altered or its key ID swapped, then decoding refuses it instead of returning garbage', async () => {
  const codec = new AesGcmCodec([key('k1'), key('k2')]);
  const [sealed] = await codec.encode([payloadOf(CUSTOMER)]);
  const flipped = Buffer.from(sealed!.data!);
  flipped[20] = flipped[20]! ^ 1;
  await expect(codec.decode([{ ...sealed!, data: flipped }])).rejects.toThrow(/failed authentication/);
  const swapped = { ...sealed!, metadata: { ...sealed!.metadata, [KEY_ID_METADATA]: Buffer.from('k2') } };
  await expect(codec.decode([swapped])).rejects.toThrow(/key "k2" failed authentication/);
  await expect(codec.decode([{ ...sealed!, data: Buffer.alloc(5) }])).rejects.toThrow(/truncated/);
});

test('when a payload was stored before encryption was turned on, then it passes through decoding unchanged', async () => {
  const plain = payloadOf({ sessionId: 'cs_test_1' });
  const [decoded] = await new AesGcmCodec([key('k1')]).decode([plain]);
  expect(decoded).toBe(plain);
});

test('when encryption is turned off with the keys kept, then new payloads stay plain and old ones still decode', async () => {
  const [old] = await new AesGcmCodec([key('k1')]).encode([payloadOf('old')]);
  const readOnly = new AesGcmCodec([key('k1')], false);
  const plain = payloadOf('new');
  expect(await readOnly.encode([plain])).toEqual([plain]);
  expect(defaultPayloadConverter.fromPayload((await readOnly.decode([old!]))[0]!)).toBe('old');
});

test('when a key is malformed, then the codec refuses to start', () => {
  expect(() => new AesGcmCodec([])).toThrow(/at least one key/);
  expect(() => new AesGcmCodec([{ id: 'k1', secret: Buffer.alloc(16) }])).toThrow(/must be 32 bytes/);
  expect(() => new AesGcmCodec([key('k1'), key('k1')])).toThrow(/unique/);
});
