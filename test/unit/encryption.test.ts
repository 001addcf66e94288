import { createCipheriv, randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload, type SerializationContext } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import {
  AesGcmCodec,
  BINDING_METADATA,
  dataConverterFor,
  ENCRYPTED_ENCODING,
  FORMAT_METADATA,
  KEY_ID_METADATA,
  PayloadDecryptionError,
  PayloadRefusedError,
  STRICT_FAILURE_CONVERTER_PATH,
  type EncryptionKey,
} from '../../src/temporal/encryption';
import { RECONCILER_SCHEDULE_ID } from '../../workflows/definitions';

const key = (id: string): EncryptionKey => ({ id, secret: Buffer.alloc(32, id) });
const CUSTOMER = { email: 'ada.lovelace@example.org', name: 'Ada Lovelace' };
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');

const WORKFLOW_A: SerializationContext = { type: 'workflow', namespace: 'default', workflowId: 'cs_test_a' };
const WORKFLOW_B: SerializationContext = { type: 'workflow', namespace: 'default', workflowId: 'cs_test_b' };
const activityOf = (workflowId: string, activityId: string): SerializationContext => ({
  type: 'activity',
  namespace: 'default',
  workflowId,
  activityId,
  isLocal: false,
});

function payloadOf(value: unknown): Payload {
  return defaultPayloadConverter.toPayload(value);
}
const valueOf = (payload: Payload | undefined) => defaultPayloadConverter.fromPayload(payload!);

/** A payload in the first format, exactly as the code before binding wrote it: the key ID alone as additional data. */
function firstFormat(value: unknown, { id, secret }: EncryptionKey): Payload {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', secret, iv);
  cipher.setAAD(Buffer.from(id));
  const plain = temporal.api.common.v1.Payload.encode(payloadOf(value)).finish();
  return {
    metadata: { encoding: Buffer.from(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: Buffer.from(id), 'encryption-cipher': Buffer.from('AES256-GCM') },
    data: Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]),
  };
}

test('when a payload is encoded, then neither its data nor its metadata is readable, and decoding gives it back whole', async () => {
  const codec = new AesGcmCodec([key('k1')]);
  const original = payloadOf(CUSTOMER);
  const [sealed] = await codec.encode([original], WORKFLOW_A);
  expect(text(sealed!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
  expect(text(sealed!.metadata![KEY_ID_METADATA])).toBe('k1');
  expect(text(sealed!.data)).not.toContain('ada.lovelace');
  expect(text(sealed!.data)).not.toContain('json/plain');
  const [opened] = await codec.decode([sealed!], WORKFLOW_A);
  expect(valueOf(opened)).toEqual(CUSTOMER);
  expect(text(opened!.metadata!.encoding)).toBe('json/plain');
});

test('when a payload is encoded for a workflow or an activity, then its metadata names that owner in clear (the codec server reads it)', async () => {
  const codec = new AesGcmCodec([key('k1')]);
  const [forWorkflow] = await codec.encode([payloadOf('x')], WORKFLOW_A);
  const [forActivity] = await codec.encode([payloadOf('x')], activityOf('cs_test_a', '3'));
  expect(text(forWorkflow!.metadata![FORMAT_METADATA])).toBe('2');
  expect(JSON.parse(text(forWorkflow!.metadata![BINDING_METADATA]))).toEqual({ kind: 'workflow', namespace: 'default', workflowId: 'cs_test_a' });
  expect(JSON.parse(text(forActivity!.metadata![BINDING_METADATA]))).toEqual({ kind: 'activity', namespace: 'default', workflowId: 'cs_test_a', activityId: '3' });
});

test('when the same value is encoded twice, then the ciphertexts differ (a fresh nonce each time)', async () => {
  const codec = new AesGcmCodec([key('k1')]);
  const [a, b] = await codec.encode([payloadOf(CUSTOMER), payloadOf(CUSTOMER)], WORKFLOW_A);
  expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
});

describe('strict mode (PAYLOAD_ENCRYPTION=on)', () => {
  const codec = new AesGcmCodec([key('k1')]);

  test('when a payload is not encrypted, then decoding refuses it, for a workflow, an activity or an unknown owner', async () => {
    const plain = payloadOf({ id: 'evt_forged', type: 'checkout.session.async_payment_failed' });
    await expect(codec.decode([plain], WORKFLOW_A)).rejects.toThrow(PayloadRefusedError);
    await expect(codec.decode([plain], WORKFLOW_A)).rejects.toThrow(
      /refused a payload that is not encrypted \(encoding "json\/plain"\) for workflow "cs_test_a" in namespace "default"/,
    );
    await expect(codec.decode([plain], activityOf('cs_test_a', '1'))).rejects.toThrow(/not encrypted .* for activity "1" of workflow "cs_test_a"/);
    await expect(codec.decode([plain])).rejects.toThrow(PayloadRefusedError);
    // binary/null too: the SDK writes `undefined` so, and our encoder seals it like any other payload.
    await expect(codec.decode([payloadOf(undefined)], WORKFLOW_A)).rejects.toThrow(/encoding "binary\/null"/);
  });

  test('when a ciphertext from workflow A is put into workflow B, then B refuses it, naming both', async () => {
    const [sealed] = await codec.encode([payloadOf({ id: 'evt_1', type: 'checkout.session.completed' })], WORKFLOW_A);
    await expect(codec.decode([sealed!], WORKFLOW_B)).rejects.toThrow(
      /refused a payload bound to workflow "cs_test_a" in namespace "default" where one for workflow "cs_test_b" in namespace "default" was expected/,
    );
    await expect(codec.decode([sealed!], { ...WORKFLOW_A, namespace: 'other' })).rejects.toThrow(PayloadRefusedError);
  });

  test('when an activity result is put into another activity, another workflow, or a workflow signal, then it is refused', async () => {
    const [paid] = await codec.encode([payloadOf({ paymentStatus: 'paid' })], activityOf('cs_test_a', '2'));
    expect(valueOf((await codec.decode([paid!], activityOf('cs_test_a', '2')))[0])).toEqual({ paymentStatus: 'paid' });
    await expect(codec.decode([paid!], activityOf('cs_test_a', '5'))).rejects.toThrow(/bound to activity "2" of workflow "cs_test_a"/);
    await expect(codec.decode([paid!], activityOf('cs_test_b', '2'))).rejects.toThrow(PayloadRefusedError);
    await expect(codec.decode([paid!], WORKFLOW_A)).rejects.toThrow(PayloadRefusedError);
  });

  test('when the binding in the metadata is rewritten to the new owner, then authentication fails', async () => {
    const [sealed] = await codec.encode([payloadOf('x')], WORKFLOW_A);
    const rebound = { ...sealed!, metadata: { ...sealed!.metadata, [BINDING_METADATA]: Buffer.from(JSON.stringify({ kind: 'workflow', namespace: 'default', workflowId: 'cs_test_b' })) } };
    await expect(codec.decode([rebound], WORKFLOW_B)).rejects.toThrow(/failed authentication: altered/);
    const unbound = { ...sealed!, metadata: { ...sealed!.metadata, [FORMAT_METADATA]: Buffer.from('1') } };
    await expect(codec.decode([unbound], WORKFLOW_B)).rejects.toThrow(/first, unbound encryption format/);
    await expect(new AesGcmCodec([key('k1')], { strict: false }).decode([unbound], WORKFLOW_B)).rejects.toThrow(/failed authentication/);
  });

  test('when a payload was made without an owner (the codec server cannot say whose), then strict mode refuses it', async () => {
    const [unbound] = await codec.encode([payloadOf('x')]);
    await expect(codec.decode([unbound!], WORKFLOW_A)).rejects.toThrow(/refused a payload bound to no workflow where one for workflow "cs_test_a"/);
  });

  test('when a payload of the first, unbound format is read (it would open in any workflow), then strict mode refuses it', async () => {
    const old = firstFormat({ id: 'cs_test_a', paymentStatus: 'paid' }, key('k1'));
    await expect(codec.decode([old], WORKFLOW_B)).rejects.toThrow(/refused a payload of the first, unbound encryption format for workflow "cs_test_b"/);
    await expect(codec.decode([old], activityOf('cs_test_b', '3'))).rejects.toThrow(PayloadRefusedError);
    await expect(new AesGcmCodec([key('k2')]).decode([old], WORKFLOW_A)).rejects.toThrow(/key "k1", which is not among/);
  });

  test("when a run of the reconciler's Schedule reads its action's input or another run's result, then they are its own", async () => {
    const scheduled = new AesGcmCodec([key('k1')], { scheduledWorkflowIds: [RECONCILER_SCHEDULE_ID] });
    const run = (at: string): SerializationContext => ({ type: 'workflow', namespace: 'default', workflowId: `${RECONCILER_SCHEDULE_ID}-${at}` });
    const [input] = await scheduled.encode([payloadOf({ lookback: '3 days' })], { type: 'workflow', namespace: 'default', workflowId: RECONCILER_SCHEDULE_ID });
    const [lastResult] = await scheduled.encode([payloadOf({ started: 0 })], run('2026-01-01T10:00:00Z'));
    expect(valueOf((await scheduled.decode([input!], run('2026-01-01T10:15:00Z')))[0])).toEqual({ lookback: '3 days' });
    expect(valueOf((await scheduled.decode([lastResult!], run('2026-01-01T10:15:00Z')))[0])).toEqual({ started: 0 });
    // Not a way into other workflows: a session's payload stays its own, and only the Schedule's runs match.
    await expect(scheduled.decode([input!], WORKFLOW_A)).rejects.toThrow(PayloadRefusedError);
    const [session] = await scheduled.encode([payloadOf('x')], WORKFLOW_A);
    await expect(scheduled.decode([session!], { ...WORKFLOW_A, workflowId: 'cs_test_a-2026-01-01T10:15:00Z' })).rejects.toThrow(PayloadRefusedError);
    await expect(scheduled.decode([input!], { ...WORKFLOW_A, workflowId: `${RECONCILER_SCHEDULE_ID}-later` })).rejects.toThrow(PayloadRefusedError);
    await expect(codec.decode([input!], run('2026-01-01T10:15:00Z'))).rejects.toThrow(PayloadRefusedError);
  });

  test('when the product builds its data converter with encryption on, then it is strict and knows the reconciler Schedule', async () => {
    const converter = dataConverterFor({ keys: [key('k1')], encrypt: true, strict: true })!;
    expect(converter.failureConverterPath).toBe(STRICT_FAILURE_CONVERTER_PATH);
    const [codecOfProduct] = converter.payloadCodecs!;
    await expect(codecOfProduct!.decode([payloadOf('forged')], WORKFLOW_A)).rejects.toThrow(PayloadRefusedError);
    const [input] = await codecOfProduct!.encode([payloadOf('x')], { ...WORKFLOW_A, workflowId: RECONCILER_SCHEDULE_ID });
    await expect(codecOfProduct!.decode([input!], { ...WORKFLOW_A, workflowId: `${RECONCILER_SCHEDULE_ID}-2026-01-01T10:15:00Z` })).resolves.toHaveLength(1);
  });
});

describe('permissive mode (PAYLOAD_ENCRYPTION=permissive), chosen to read histories written before encryption', () => {
  const permissive = new AesGcmCodec([key('k1')], { strict: false });

  test('when a payload was stored before encryption was turned on, then it passes through decoding unchanged', async () => {
    const plain = payloadOf({ sessionId: 'cs_test_1' });
    const [decoded] = await permissive.decode([plain], WORKFLOW_A);
    expect(decoded).toBe(plain);
    expect(dataConverterFor({ keys: [key('k1')], encrypt: true, strict: false })!.failureConverterPath).not.toBe(STRICT_FAILURE_CONVERTER_PATH);
  });

  test('when a payload is bound elsewhere or to no one, then it is read as before binding; new payloads are still bound', async () => {
    const [fromA] = await permissive.encode([payloadOf('a')], WORKFLOW_A);
    const [unbound] = await permissive.encode([payloadOf('u')]);
    expect((await permissive.decode([fromA!, unbound!, firstFormat('old', key('k1'))], WORKFLOW_B)).map(valueOf)).toEqual(['a', 'u', 'old']);
    await expect(new AesGcmCodec([key('k1')]).decode([fromA!], WORKFLOW_B)).rejects.toThrow(PayloadRefusedError);
  });
});

describe('the codec server (for display: no owner given)', () => {
  const display = new AesGcmCodec([key('k1')], { forDisplay: true });

  test('when the UI sends bound, unbound and first-format payloads, then each opens under the binding it names', async () => {
    const bound = new AesGcmCodec([key('k1')]);
    const [fromA] = await bound.encode([payloadOf('a')], WORKFLOW_A);
    const [fromActivity] = await bound.encode([payloadOf('r')], activityOf('cs_test_b', '4'));
    const decoded = await display.decode([fromA!, fromActivity!, firstFormat('old', key('k1'))]);
    expect(decoded.map(valueOf)).toEqual(['a', 'r', 'old']);
  });

  test('when the UI sends payloads in clear (sdk-core writes its markers so), then they are shown as they are; altered ciphertext is refused', async () => {
    const marker = payloadOf({ patch_id: 'confirm-payment-failed', deprecated: false });
    expect(await display.decode([marker])).toEqual([marker]);
    const [sealed] = await new AesGcmCodec([key('k1')]).encode([payloadOf('x')], WORKFLOW_A);
    const rebound = { ...sealed!, metadata: { ...sealed!.metadata, [BINDING_METADATA]: Buffer.from('{"kind":"none"}') } };
    await expect(display.decode([rebound])).rejects.toThrow(/failed authentication/);
  });
});

test('when keys are rotated, then new payloads use the new key and payloads under the old one still decode', async () => {
  const [old] = await new AesGcmCodec([key('k1')]).encode([payloadOf('before')], WORKFLOW_A);
  const rotated = new AesGcmCodec([key('k2'), key('k1')]);
  const [fresh] = await rotated.encode([payloadOf('after')], WORKFLOW_A);
  expect(text(fresh!.metadata![KEY_ID_METADATA])).toBe('k2');
  const decoded = await rotated.decode([old!, fresh!], WORKFLOW_A);
  expect(decoded.map(valueOf)).toEqual(['before', 'after']);
  await expect(rotated.decode([old!], WORKFLOW_B)).rejects.toThrow(PayloadRefusedError);
});

test('when a payload names a key that is no longer configured, then decoding says which key to add back', async () => {
  const [old] = await new AesGcmCodec([key('k1')]).encode([payloadOf('x')], WORKFLOW_A);
  await expect(new AesGcmCodec([key('k2')]).decode([old!], WORKFLOW_A)).rejects.toThrow(
    new PayloadDecryptionError('payload encrypted with key "k1", which is not among PAYLOAD_ENCRYPTION_KEYS; add it back (after the new key) to read it'),
  );
});

test('when a ciphertext is altered or its key ID swapped, then decoding refuses it instead of returning garbage', async () => {
  const codec = new AesGcmCodec([key('k1'), key('k2')]);
  const [sealed] = await codec.encode([payloadOf(CUSTOMER)], WORKFLOW_A);
  const flipped = Buffer.from(sealed!.data!);
  flipped[20] = flipped[20]! ^ 1;
  await expect(codec.decode([{ ...sealed!, data: flipped }], WORKFLOW_A)).rejects.toThrow(/failed authentication/);
  const swapped = { ...sealed!, metadata: { ...sealed!.metadata, [KEY_ID_METADATA]: Buffer.from('k2') } };
  await expect(codec.decode([swapped], WORKFLOW_A)).rejects.toThrow(/key "k2" failed authentication/);
  await expect(codec.decode([{ ...sealed!, data: Buffer.alloc(5) }], WORKFLOW_A)).rejects.toThrow(/truncated/);
});

test('when encryption is turned off with the keys kept, then new payloads stay plain and old ones still decode', async () => {
  const [old] = await new AesGcmCodec([key('k1')]).encode([payloadOf('old')], WORKFLOW_A);
  const readOnly = new AesGcmCodec([key('k1')], { encrypt: false });
  const plain = payloadOf('new');
  expect(await readOnly.encode([plain], WORKFLOW_A)).toEqual([plain]);
  expect((await readOnly.decode([old!, plain], WORKFLOW_B)).map(valueOf)).toEqual(['old', 'new']);
});

test('when a key is malformed, then the codec refuses to start', () => {
  expect(() => new AesGcmCodec([])).toThrow(/at least one key/);
  expect(() => new AesGcmCodec([{ id: 'k1', secret: Buffer.alloc(16) }])).toThrow(/must be 32 bytes/);
  expect(() => new AesGcmCodec([key('k1'), key('k1')])).toThrow(/unique/);
});
