import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { RECONCILER_SCHEDULE_ID } from '../../workflows/definitions';

/**
 * Payload encryption: AES-256-GCM over every payload Temporal stores (workflow and activity
 * inputs and results, signals, queries, memos, and failures' messages and stack traces through
 * the failure converter), so the server, its database and its operators hold only ciphertext.
 *
 * Each payload is bound to the workflow it belongs to: the namespace, the workflow ID and, for an
 * activity's input, result, heartbeat or failure, the activity's ID, are part of the AEAD's
 * additional data, and travel in clear in the payload's metadata so the codec server (which the
 * UI tells nothing about the workflow) can still open it. Where the SDK says whose payload it is
 * decoding (its `SerializationContext`), a payload bound elsewhere is refused: a ciphertext copied
 * from one workflow's history into another's signal or activity completion does not decode.
 */

export interface EncryptionKey {
  /** Travels in each payload's metadata, so a payload names the key that opens it. */
  id: string;
  /** 32 bytes. */
  secret: Buffer;
}

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
/** `2`: bound to its workflow (BINDING_METADATA). Absent: the first format, bound to nothing but its key ID. */
export const FORMAT_METADATA = 'encryption-format';
/** The owner the payload is bound to, as JSON (`PayloadBinding`), in clear and authenticated. */
export const BINDING_METADATA = 'encryption-binding';
const BOUND_FORMAT = '2';
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

/** A payload that opens (or is plaintext) but that strict mode does not accept here: whose it is, or that it is not ours. */
export class PayloadRefusedError extends PayloadDecryptionError {
  override name = 'PayloadRefusedError';
}

/** Whose payload this is: what the SDK's serialization context says, or `none` where it says nothing (the codec server's `/encode`). */
export interface PayloadBinding {
  kind: 'workflow' | 'activity' | 'none';
  namespace?: string;
  workflowId?: string;
  /** Activities only: the ID the scheduling workflow gave it (its sequence number unless set). */
  activityId?: string;
}

/** The binding a payload encoded under `context` carries. Fields in a fixed order: the JSON is the additional data. */
export function bindingOf(context: SerializationContext | undefined): PayloadBinding {
  if (!context) return { kind: 'none' };
  if (context.type === 'workflow') return { kind: 'workflow', namespace: context.namespace, workflowId: context.workflowId };
  return { kind: 'activity', namespace: context.namespace, workflowId: context.workflowId, activityId: context.activityId };
}

export interface AesGcmCodecOptions {
  /** Encrypt new payloads with `keys[0]`. False: decrypt only (encryption turned off, old payloads still readable). Default true. */
  encrypt?: boolean;
  /**
   * Refuse on decode what was not encrypted by us for this owner: plaintext, a payload bound to
   * another workflow or activity, one bound to nothing, one of the first, unbound format.
   * Default: `encrypt`.
   */
  strict?: boolean;
  /**
   * Workflow IDs of Temporal Schedules' actions. A Schedule's client encodes its input under the
   * action's workflow ID, and each run gets that ID with `-<start time>` appended; a payload bound
   * to the action, or to one run, is accepted by another run of the same Schedule.
   */
  scheduledWorkflowIds?: readonly string[];
  /**
   * For the codec server, which decodes for people to read and decides nothing: payloads in clear
   * are shown as they are, since its callers (the UI, the CLI) also send sdk-core's marker
   * bookkeeping, written in clear and indistinguishable by its bytes from a forged payload.
   */
  forDisplay?: boolean;
}

/** What Temporal appends to a Schedule action's workflow ID for each run: `-` and the nominal start time (RFC 3339, UTC). */
const SCHEDULED_RUN_SUFFIX = /-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/**
 * Encrypts with the first key; decrypts with whichever key a payload names, so after a rotation
 * (a new key put first) payloads written under the old keys still open. In strict mode (the
 * default wherever encryption is on) a payload that is not ours for this owner fails to decode,
 * naming why: the workflow task or activity that meets it fails, and nothing decides on it.
 */
export class AesGcmCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;
  private readonly encrypt: boolean;
  private readonly strict: boolean;
  private readonly scheduledWorkflowIds: readonly string[];
  private readonly forDisplay: boolean;

  constructor(
    private readonly keys: readonly EncryptionKey[],
    options: AesGcmCodecOptions = {},
  ) {
    if (keys.length === 0) throw new Error('AesGcmCodec needs at least one key');
    for (const key of keys) {
      if (!KEY_ID_PATTERN.test(key.id)) throw new Error(`encryption key ID "${key.id}" must match ${KEY_ID_PATTERN}`);
      if (key.secret.length !== KEY_BYTES) throw new Error(`encryption key "${key.id}" must be ${KEY_BYTES} bytes`);
    }
    this.byId = new Map(keys.map((key) => [key.id, key.secret]));
    if (this.byId.size !== keys.length) throw new Error('encryption key IDs must be unique');
    this.encrypt = options.encrypt ?? true;
    this.strict = options.strict ?? this.encrypt;
    this.scheduledWorkflowIds = options.scheduledWorkflowIds ?? [];
    this.forDisplay = options.forDisplay ?? false;
  }

  async encode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    if (!this.encrypt) return payloads;
    const key = this.keys[0]!;
    const binding = utf8.encode(JSON.stringify(bindingOf(context)));
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key.secret, iv);
      cipher.setAAD(boundAad(key.id, binding));
      const plain = ProtoPayload.encode(payload).finish();
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          encoding: utf8.encode(ENCRYPTED_ENCODING),
          [KEY_ID_METADATA]: utf8.encode(key.id),
          [CIPHER_METADATA]: utf8.encode(CIPHER),
          [FORMAT_METADATA]: utf8.encode(BOUND_FORMAT),
          [BINDING_METADATA]: binding,
        },
        data: sealed,
      };
    });
  }

  async decode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    return payloads.map((payload) => this.decodeOne(payload, context));
  }

  private decodeOne(payload: Payload, context: SerializationContext | undefined): Payload {
    const metadata = payload.metadata ?? {};
    const encoding = metadata.encoding ? text.decode(metadata.encoding) : '';
    if (encoding !== ENCRYPTED_ENCODING) {
      // What the workers and clients decode never includes the SDK's own bookkeeping: search
      // attributes and headers are not given to codecs, and sdk-core reads its markers (patches,
      // local activities' data) itself. Anything in clear here came from outside.
      if (this.strict && !this.forDisplay) {
        throw new PayloadRefusedError(
          `refused a payload that is not encrypted (encoding "${encoding || 'none'}") for ${describe(bindingOf(context))}: ` +
            'with PAYLOAD_ENCRYPTION=on only payloads encrypted with our keys are accepted. It was written by someone without them, ' +
            'or before encryption was turned on (PAYLOAD_ENCRYPTION=permissive reads those)',
        );
      }
      return payload;
    }
    const keyId = metadata[KEY_ID_METADATA] ? text.decode(metadata[KEY_ID_METADATA]) : '';
    const secret = this.byId.get(keyId);
    if (!secret) {
      throw new PayloadDecryptionError(
        `payload encrypted with key "${keyId}", which is not among PAYLOAD_ENCRYPTION_KEYS; add it back (after the new key) to read it`,
      );
    }
    const format = metadata[FORMAT_METADATA] ? text.decode(metadata[FORMAT_METADATA]) : '1';
    if (format !== '1' && format !== BOUND_FORMAT) throw new PayloadDecryptionError(`payload of unknown encryption format "${format}"`);
    const binding = format === BOUND_FORMAT ? (metadata[BINDING_METADATA] ?? new Uint8Array()) : undefined;
    // The first format's additional data is the key ID alone: such a payload opens wherever it is
    // put, and its failures' attributes vouch for any clear type. Only permissive mode reads it,
    // so executions written before binding can close (README, "Payload encryption").
    if (!binding && this.strict && !this.forDisplay) {
      throw new PayloadRefusedError(
        `refused a payload of the first, unbound encryption format for ${describe(bindingOf(context))}: it opens in any workflow, ` +
          'so with PAYLOAD_ENCRYPTION=on it is not accepted. Executions written before the upgrade need PAYLOAD_ENCRYPTION=permissive until they close',
      );
    }
    const sealed = Buffer.from(payload.data ?? new Uint8Array());
    if (sealed.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`payload encrypted with key "${keyId}" is truncated`);
    const decipher = createDecipheriv('aes-256-gcm', secret, sealed.subarray(0, IV_BYTES));
    decipher.setAAD(binding ? boundAad(keyId, binding) : utf8.encode(keyId));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(
        `payload encrypted with key "${keyId}" failed authentication: altered (its data or its binding), or another key under that ID`,
      );
    }
    if (binding && this.strict && !this.forDisplay) this.checkOwner(JSON.parse(text.decode(binding)) as PayloadBinding, context);
    const decoded = ProtoPayload.decode(plain);
    return { metadata: decoded.metadata, data: decoded.data };
  }

  /** Refuses a payload bound to no one, or to anyone but the owner the SDK is decoding for (when it says). */
  private checkOwner(bound: PayloadBinding, context: SerializationContext | undefined): void {
    if (bound.kind === 'none') {
      throw new PayloadRefusedError(
        `refused a payload bound to no workflow${context ? ` where one for ${describe(bindingOf(context))} was expected` : ''}: ` +
          'made without knowing its owner (the codec server cannot bind), and accepted only with PAYLOAD_ENCRYPTION=permissive',
      );
    }
    if (!context) return; // the SDK did not say whose payload this is: nothing to compare with
    const wanted = bindingOf(context);
    const same =
      bound.kind === wanted.kind &&
      bound.namespace === wanted.namespace &&
      (wanted.workflowId === undefined || this.sameWorkflow(bound.workflowId, wanted.workflowId)) &&
      (wanted.activityId === undefined || bound.activityId === wanted.activityId);
    if (!same) {
      throw new PayloadRefusedError(
        `refused a payload bound to ${describe(bound)} where one for ${describe(wanted)} was expected: ` +
          'a ciphertext copied from elsewhere, or made without knowing its owner (the codec server cannot bind)',
      );
    }
  }

  private sameWorkflow(bound: string | undefined, wanted: string): boolean {
    if (bound === wanted) return true;
    if (bound === undefined) return false;
    const schedule = (id: string) => {
      const action = id.replace(SCHEDULED_RUN_SUFFIX, '');
      return action !== id && this.scheduledWorkflowIds.includes(action) ? action : undefined;
    };
    const wantedSchedule = schedule(wanted);
    return wantedSchedule !== undefined && (bound === wantedSchedule || schedule(bound) === wantedSchedule);
  }
}

function boundAad(keyId: string, binding: Uint8Array): Uint8Array {
  return Buffer.concat([utf8.encode(`${BOUND_FORMAT}\n${keyId}\n`), binding]);
}

function describe(binding: PayloadBinding): string {
  if (binding.kind === 'none') return 'no workflow';
  const workflow = `workflow "${binding.workflowId ?? '?'}" in namespace "${binding.namespace ?? '?'}"`;
  return binding.kind === 'workflow' ? workflow : `activity "${binding.activityId ?? '?'}" of ${workflow}`;
}

/**
 * A failure converter that moves messages and stack traces into an encoded attribute, which the
 * codec then encrypts (they can quote customer data: a mail server's refusal, a Stripe error),
 * with an encrypted copy of each failure's kind and type. Both modes write the same; the strict
 * one also refuses a failure that is not ours (src/temporal/strict-failure-converter.ts), the
 * other (`permissive`) refuses nothing.
 */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');
export const STRICT_FAILURE_CONVERTER_PATH = require.resolve('./strict-failure-converter');

export interface PayloadEncryption {
  /** Decrypt with these; empty: encryption not configured at all. */
  keys: EncryptionKey[];
  /** Encrypt new payloads with `keys[0]`. */
  encrypt: boolean;
  /** Refuse on decode what is not ours for its owner (`PAYLOAD_ENCRYPTION=on`); false with `permissive` and `off`. */
  strict: boolean;
}

/** The failure converter module a worker's bundle and its clients load, for this setting. */
export function failureConverterPathFor(encryption: PayloadEncryption): string | undefined {
  if (encryption.keys.length === 0 || !encryption.encrypt) return undefined;
  return encryption.strict ? STRICT_FAILURE_CONVERTER_PATH : FAILURE_CONVERTER_PATH;
}

/**
 * The data converter for every Temporal client and worker of the product: the SDK's default without
 * keys. With keys but encryption turned off it only decrypts what was written before (failures
 * written encoded are decoded by the default failure converter as well).
 */
export function dataConverterFor(encryption: PayloadEncryption): DataConverter | undefined {
  if (encryption.keys.length === 0) return undefined;
  return {
    payloadCodecs: [
      new AesGcmCodec(encryption.keys, { encrypt: encryption.encrypt, strict: encryption.strict, scheduledWorkflowIds: [RECONCILER_SCHEDULE_ID] }),
    ],
    failureConverterPath: failureConverterPathFor(encryption),
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
