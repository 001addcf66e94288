import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

/**
 * Payload encryption: AES-256-GCM over every payload Temporal stores (workflow and activity
 * inputs and results, signals, queries, memos, and failures' messages and stack traces through
 * the failure converter), so the server, its database and its operators hold only ciphertext.
 */

export interface EncryptionKey {
  /** Travels in each payload's metadata, so a payload names the key that opens it. */
  id: string;
  /** 32 bytes. */
  secret: Buffer;
}

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const CIPHER_METADATA = 'encryption-cipher';
const CIPHER = 'AES256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;
export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

const utf8 = new TextEncoder();
const text = new TextDecoder();
const ProtoPayload = temporal.api.common.v1.Payload;

export class PayloadDecryptionError extends Error {
  override name = 'PayloadDecryptionError';
}

/**
 * Encrypts with the first key; decrypts with whichever key a payload names, so after a rotation
 * (a new key put first) payloads written under the old keys still open. A payload that is not
 * encrypted (written before encryption was turned on) passes through unchanged.
 */
export class AesGcmCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;

  /** `keys[0]` encrypts; `encrypt: false` decrypts only (encryption turned off, old payloads still readable). */
  constructor(
    private readonly keys: readonly EncryptionKey[],
    private readonly encrypt = true,
  ) {
    if (keys.length === 0) throw new Error('AesGcmCodec needs at least one key');
    for (const key of keys) {
      if (!KEY_ID_PATTERN.test(key.id)) throw new Error(`encryption key ID "${key.id}" must match ${KEY_ID_PATTERN}`);
      if (key.secret.length !== KEY_BYTES) throw new Error(`encryption key "${key.id}" must be ${KEY_BYTES} bytes`);
    }
    this.byId = new Map(keys.map((key) => [key.id, key.secret]));
    if (this.byId.size !== keys.length) throw new Error('encryption key IDs must be unique');
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    if (!this.encrypt) return payloads;
    const key = this.keys[0]!;
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key.secret, iv);
      cipher.setAAD(utf8.encode(key.id));
      const plain = ProtoPayload.encode(payload).finish();
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          encoding: utf8.encode(ENCRYPTED_ENCODING),
          [KEY_ID_METADATA]: utf8.encode(key.id),
          [CIPHER_METADATA]: utf8.encode(CIPHER),
        },
        data: sealed,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const metadata = payload.metadata ?? {};
      if (!metadata.encoding || text.decode(metadata.encoding) !== ENCRYPTED_ENCODING) return payload;
      const keyId = metadata[KEY_ID_METADATA] ? text.decode(metadata[KEY_ID_METADATA]) : '';
      const secret = this.byId.get(keyId);
      if (!secret) {
        throw new PayloadDecryptionError(
          `payload encrypted with key "${keyId}", which is not among PAYLOAD_ENCRYPTION_KEYS; add it back (after the new key) to read it`,
        );
      }
      const sealed = Buffer.from(payload.data ?? new Uint8Array());
      if (sealed.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`payload encrypted with key "${keyId}" is truncated`);
      const decipher = createDecipheriv('aes-256-gcm', secret, sealed.subarray(0, IV_BYTES));
      decipher.setAAD(utf8.encode(keyId));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new PayloadDecryptionError(`payload encrypted with key "${keyId}" failed authentication: altered, or another key under that ID`);
      }
      const decoded = ProtoPayload.decode(plain);
      return { metadata: decoded.metadata, data: decoded.data };
    });
  }
}

/**
 * A failure converter that moves messages and stack traces into an encoded attribute, which the
 * codec then encrypts (they can quote customer data: a mail server's refusal, a Stripe error).
 */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

export interface PayloadEncryption {
  /** Decrypt with these; empty: encryption not configured at all. */
  keys: EncryptionKey[];
  /** Encrypt new payloads with `keys[0]`. */
  encrypt: boolean;
}

/**
 * The data converter for every Temporal client and worker of the product: the SDK's default without
 * keys. With keys but encryption turned off it only decrypts what was written before (failures
 * written encoded are decoded by the default failure converter as well).
 */
export function dataConverterFor(encryption: PayloadEncryption): DataConverter | undefined {
  if (encryption.keys.length === 0) return undefined;
  return {
    payloadCodecs: [new AesGcmCodec(encryption.keys, encryption.encrypt)],
    failureConverterPath: encryption.encrypt ? FAILURE_CONVERTER_PATH : undefined,
  };
}

/** A fresh key entry for PAYLOAD_ENCRYPTION_KEYS: `<id>:<base64 of 32 random bytes>`. */
export function newKeyEntry(id = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`): string {
  return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

/** PAYLOAD_ENCRYPTION_KEYS's entries, or the problem with them (never quoting a secret). */
export function parseKeyEntries(value: string): EncryptionKey[] | string {
  const entries = value.split(',').map((entry) => entry.trim()).filter(Boolean);
  const keys: EncryptionKey[] = [];
  for (const [index, entry] of entries.entries()) {
    const separator = entry.indexOf(':');
    const id = separator > 0 ? entry.slice(0, separator) : '';
    const encoded = separator > 0 ? entry.slice(separator + 1) : '';
    if (!KEY_ID_PATTERN.test(id)) return `entry ${index + 1} must be <key id>:<base64 key>, the ID made of letters, digits, ".", "_" or "-"`;
    const secret = Buffer.from(encoded, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || secret.length !== KEY_BYTES) {
      return `key "${id}" must be ${KEY_BYTES} bytes in base64 (npm run --silent encryption-key prints a new one)`;
    }
    if (keys.some((key) => key.id === id)) return `key ID "${id}" appears twice`;
    keys.push({ id, secret });
  }
  return keys;
}
