import net from 'node:net';
import { ConfigError, loadCodecServerConfig, loadConfig, loadConfigToStart } from '../../src/config';
import { newKeyEntry } from '../../src/temporal/encryption';

const valid = { STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_WEBHOOK_SECRET: 'whsec_one' };
const KEY = newKeyEntry('k1');
const OLD_KEY = newKeyEntry('k0');

describe('loadConfig', () => {
  test('when only the Stripe secrets are set, then everything else has embedded defaults', () => {
    const config = loadConfig(valid);
    expect(config.port).toBe(4242);
    expect(config.temporal.address).toBeUndefined();
    expect(config.temporal.taskQueue).toBe('fulfillment');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.email.smtpUrl).toBeUndefined();
    expect(config.email.outboxDir).toMatch(/\.data\/outbox$/);
    expect(config.stripe.webhookSecrets).toEqual(['whsec_one']);
  });

  test('when METRICS_PORT is unset, a port, 0 or off, then a worker-only process serves /metrics there, anywhere free, or not at all', () => {
    expect(loadConfig(valid).metricsPort).toBe(9464);
    expect(loadConfig({ ...valid, METRICS_PORT: '9100' }).metricsPort).toBe(9100);
    expect(loadConfig({ ...valid, METRICS_PORT: '0' }).metricsPort).toBe(0);
    expect(loadConfig({ ...valid, METRICS_PORT: 'off' }).metricsPort).toBeNull();
    expect(() => loadConfig({ ...valid, METRICS_PORT: 'on' })).toThrow(/METRICS_PORT: must be a port number \(0-65535\) or "off"/);
    expect(() => loadConfig({ ...valid, METRICS_PORT: '70000' })).toThrow(/METRICS_PORT: must be a port number/);
  });

  test('when several webhook secrets are given (rotation), then all are kept', () => {
    expect(loadConfig({ ...valid, STRIPE_WEBHOOK_SECRET: 'whsec_old, whsec_new' }).stripe.webhookSecrets).toEqual([
      'whsec_old',
      'whsec_new',
    ]);
  });

  test('when STRIPE_API_BASE points at a local emulator, then host, port and protocol are parsed', () => {
    expect(loadConfig({ ...valid, STRIPE_API_BASE: 'http://127.0.0.1:12111' }).stripe.apiBase).toEqual({
      protocol: 'http',
      host: '127.0.0.1',
      port: 12111,
    });
  });

  test('when no webhook secret is set, then a worker starts but the ingress is refused', () => {
    const split = { STRIPE_SECRET_KEY: 'sk_test_abc', TEMPORAL_ADDRESS: 'temporal:7233', DATABASE_URL: 'postgres://db/x', PAYLOAD_ENCRYPTION_KEYS: KEY };
    expect(loadConfig(split, 'worker').stripe.webhookSecrets).toEqual([]);
    expect(() => loadConfig(split, 'ingress')).toThrow(/STRIPE_WEBHOOK_SECRET: is required/);
  });

  test('when the worker runs as its own process without a shared Temporal and PostgreSQL, then both are named', () => {
    expect(() => loadConfig({ STRIPE_SECRET_KEY: 'sk_test_abc' }, 'worker')).toThrow(
      expect.objectContaining({ problems: [expect.stringMatching(/^TEMPORAL_ADDRESS/), expect.stringMatching(/^DATABASE_URL/)] }),
    );
  });

  test('when several settings are wrong, then every problem is listed at once and no secret is echoed', () => {
    let error: unknown;
    try {
      loadConfig({
        STRIPE_SECRET_KEY: 'pk_live_secretvalue',
        STRIPE_WEBHOOK_SECRET: 'nope',
        PORT: 'eighty',
        SMTP_URL: 'http://mail',
        PAYMENT_DEADLINE: 'whenever',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    expect(problems.map((p) => p.split(':')[0])).toEqual(
      expect.arrayContaining(['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'PORT', 'SMTP_URL', 'PAYMENT_DEADLINE']),
    );
    expect(message).not.toContain('pk_live_secretvalue');
  });

  test.each([
    ['PORT', '', /PORT: must be a port number/],
    ['SMTP_URL', 'smtp://', /SMTP_URL: must (name a host|be an smtp)/],
    ['PAYMENT_DEADLINE', '1ms', /PAYMENT_DEADLINE: must be a duration between 1 hour and 365 days/],
    ['PAYMENT_DEADLINE', '400 days', /PAYMENT_DEADLINE: must be a duration between/],
    ['TRUST_PROXY', 'sometimes', /TRUST_PROXY: must be/],
    ['RECONCILE_EVERY', '5s', /RECONCILE_EVERY: must be "off" or a duration/],
    ['RECONCILE_LOOKBACK', 'forever', /RECONCILE_LOOKBACK: must be a duration/],
    ['RECONCILE_STUCK_AFTER', '10s', /RECONCILE_STUCK_AFTER: must be a duration/],
    ['TRUST_PROXY', '10.0.0.0/99', /TRUST_PROXY: must be/],
  ])('when %s is %j, then it is refused with a clear message', (name, value, message) => {
    expect(() => loadConfig({ ...valid, [name]: value })).toThrow(message);
  });

  test('when TRUST_PROXY is set, then Express gets a boolean, a hop count or a list of addresses', () => {
    expect(loadConfig(valid).trustProxy).toEqual(['loopback']);
    expect(loadConfig({ ...valid, TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ ...valid, TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ ...valid, TRUST_PROXY: 'loopback, 10.0.0.0/8, fd00::/8' }).trustProxy).toEqual(['loopback', '10.0.0.0/8', 'fd00::/8']);
  });

  test('when the reconciler is configured, then its interval, look-back and threshold are kept; off turns it off', () => {
    expect(loadConfig(valid).reconciler).toEqual({ every: '15 minutes', lookback: '3 days', stuckAfter: '1 hour' });
    expect(loadConfig({ ...valid, RECONCILE_EVERY: 'off' }).reconciler.every).toBeNull();
  });

  test('when no Stripe budget is set, then it fits the key\'s mode: 20 requests/s with a test key, 80 with a live one, a fifth of it (at most 4/s) for visitors', () => {
    expect(loadConfig(valid).stripe.budget).toEqual({ perSecond: 20, visitorsPerSecond: 4, fulfillmentPerSecond: 16 });
    expect(loadConfig({ ...valid, STRIPE_SECRET_KEY: 'rk_test_abc' }).stripe.budget.perSecond).toBe(20);
    expect(loadConfig({ ...valid, STRIPE_SECRET_KEY: 'sk_live_abc' }).stripe.budget).toEqual({ perSecond: 80, visitorsPerSecond: 4, fulfillmentPerSecond: 76 });
    expect(loadConfig({ ...valid, STRIPE_SECRET_KEY: 'rk_live_abc' }).stripe.budget.perSecond).toBe(80);
  });

  test('when STRIPE_REQUESTS_PER_SECOND or its old name STRIPE_MAX_READS_PER_SECOND is set, then it overrides the default; set to different values, both are refused', () => {
    expect(loadConfig({ ...valid, STRIPE_REQUESTS_PER_SECOND: '10' }).stripe.budget).toEqual({ perSecond: 10, visitorsPerSecond: 2, fulfillmentPerSecond: 8 });
    expect(loadConfig({ ...valid, STRIPE_MAX_READS_PER_SECOND: '15' }).stripe.budget.perSecond).toBe(15);
    expect(loadConfig({ ...valid, STRIPE_REQUESTS_PER_SECOND: '12', STRIPE_MAX_READS_PER_SECOND: '12' }).stripe.budget.perSecond).toBe(12);
    expect(() => loadConfig({ ...valid, STRIPE_REQUESTS_PER_SECOND: '12', STRIPE_MAX_READS_PER_SECOND: '20' })).toThrow(
      /STRIPE_REQUESTS_PER_SECOND: differs from STRIPE_MAX_READS_PER_SECOND, its old name; set only one/,
    );
  });

  test.each([
    ['not a number', 'fast', /must be a number of requests per second/],
    ['zero', '0', /must be more than 0 requests per second/],
    ['negative', '-5', /must be a number of requests per second/],
    ['absurd', '1e9', /must be a number of requests per second/],
    ['too many', '20000', /must be at most 10000 requests per second/],
  ])('when the Stripe budget is %s, then start-up names the variable and the problem', (_name, value, problem) => {
    for (const variable of ['STRIPE_REQUESTS_PER_SECOND', 'STRIPE_MAX_READS_PER_SECOND']) {
      expect(() => loadConfig({ ...valid, [variable]: value })).toThrow(new RegExp(`${variable}: ${problem.source}`));
    }
  });

  test('when the key is a live key, then the configuration says live mode', () => {
    expect(loadConfig(valid).stripe.livemode).toBe(false);
    expect(loadConfig({ ...valid, STRIPE_SECRET_KEY: 'rk_live_abc' }).stripe.livemode).toBe(true);
  });

  test('when the embedded dev server port is taken by another process, then start-up refuses, listing it with every other problem', async () => {
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const taken = (squatter.address() as net.AddressInfo).port;
    try {
      const attempt = loadConfigToStart({ ...valid, TEMPORAL_DEV_SERVER_PORT: String(taken), TEMPORAL_UI_PORT: '0', PORT: '0', SMTP_URL: 'smtp://' }, 'all');
      await expect(attempt).rejects.toThrow(ConfigError);
      const { problems } = (await attempt.catch((err: unknown) => err)) as ConfigError;
      expect(problems).toEqual([
        expect.stringMatching(/^SMTP_URL/),
        `TEMPORAL_DEV_SERVER_PORT: 127.0.0.1:${taken} is already in use by another process; stop it or choose another port`,
      ]);
      // Against a remote Temporal the local port is not ours to check.
      await expect(loadConfigToStart({ ...valid, TEMPORAL_ADDRESS: `127.0.0.1:${taken}`, PORT: '0', PAYLOAD_ENCRYPTION: 'off' }, 'all')).resolves.toBeDefined();
    } finally {
      squatter.close();
    }
  });
});

describe('payload encryption settings', () => {
  test('when Temporal is the embedded dev server and no key is given, then payloads are not encrypted', () => {
    expect(loadConfig(valid).encryption).toEqual({ keys: [], encrypt: false, strict: false });
  });

  test('when Temporal is a cluster, then encryption is on and a key is required, with the way to make one or to turn it off', () => {
    let error: unknown;
    try {
      loadConfig({ ...valid, TEMPORAL_ADDRESS: 'temporal:7233' });
    } catch (err) {
      error = err;
    }
    expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^PAYLOAD_ENCRYPTION_KEYS: is required .*npm run --silent encryption-key.*PAYLOAD_ENCRYPTION=off/)]);
    expect(loadConfig({ ...valid, TEMPORAL_ADDRESS: 'temporal:7233', PAYLOAD_ENCRYPTION: 'off' }).encryption).toEqual({ keys: [], encrypt: false, strict: false });
    const on = loadConfig({ ...valid, TEMPORAL_ADDRESS: 'temporal:7233', PAYLOAD_ENCRYPTION_KEYS: `${KEY},${OLD_KEY}` }).encryption;
    expect(on.encrypt).toBe(true);
    expect(on.strict).toBe(true);
    expect(on.keys.map((key) => key.id)).toEqual(['k1', 'k0']);
    expect(on.keys[0]!.secret).toHaveLength(32);
  });

  test('when keys are given to the embedded setup, then it encrypts; PAYLOAD_ENCRYPTION=off keeps them for reading only', () => {
    expect(loadConfig({ ...valid, PAYLOAD_ENCRYPTION_KEYS: KEY }).encryption.encrypt).toBe(true);
    const off = loadConfig({ ...valid, PAYLOAD_ENCRYPTION_KEYS: KEY, PAYLOAD_ENCRYPTION: 'off' }).encryption;
    expect(off.encrypt).toBe(false);
    expect(off.keys).toHaveLength(1);
    expect(() => loadConfig({ ...valid, PAYLOAD_ENCRYPTION: 'on' })).toThrow(/PAYLOAD_ENCRYPTION_KEYS: is required/);
  });

  test('when encryption is on, then it is strict wherever it is; permissive must be asked for, and the codec server follows', () => {
    const on = loadConfig({ ...valid, PAYLOAD_ENCRYPTION_KEYS: KEY });
    expect(on.encryption).toMatchObject({ encrypt: true, strict: true });
    expect(on.codec).toMatchObject({ encrypt: true, strict: true });
    const permissive = loadConfig({ ...valid, TEMPORAL_ADDRESS: 'temporal:7233', PAYLOAD_ENCRYPTION_KEYS: KEY, PAYLOAD_ENCRYPTION: 'permissive' });
    expect(permissive.encryption).toMatchObject({ encrypt: true, strict: false });
    expect(permissive.codec).toMatchObject({ encrypt: true, strict: false });
    expect(() => loadConfig({ ...valid, TEMPORAL_ADDRESS: 'temporal:7233', PAYLOAD_ENCRYPTION: 'permissive' })).toThrow(/PAYLOAD_ENCRYPTION_KEYS: is required/);
    expect(() => loadConfig({ ...valid, PAYLOAD_ENCRYPTION_KEYS: KEY, PAYLOAD_ENCRYPTION: 'lenient' })).toThrow(/PAYLOAD_ENCRYPTION: must be "on", "permissive" or "off"/);
    const codecEnv = { PAYLOAD_ENCRYPTION_KEYS: KEY, CODEC_AUTH_TOKEN: 'x'.repeat(32), CODEC_CORS_ORIGINS: 'http://127.0.0.1:8080' };
    expect(loadCodecServerConfig(codecEnv)).toMatchObject({ encrypt: true, strict: true });
    expect(loadCodecServerConfig({ ...codecEnv, PAYLOAD_ENCRYPTION: 'permissive' })).toMatchObject({ encrypt: true, strict: false });
    expect(loadCodecServerConfig({ ...codecEnv, PAYLOAD_ENCRYPTION: 'off' })).toMatchObject({ encrypt: false, strict: false });
  });

  test.each([
    ['k1', /PAYLOAD_ENCRYPTION_KEYS: entry 1 must be <key id>:<base64 key>/],
    ['bad id:' + Buffer.alloc(32).toString('base64'), /entry 1 must be <key id>:<base64 key>/],
    ['k1:' + Buffer.alloc(16, 7).toString('base64'), /key "k1" must be 32 bytes in base64/],
    ['k1:not base64 at all!', /key "k1" must be 32 bytes/],
    [`${KEY},${KEY}`, /key ID "k1" appears twice/],
  ])('when PAYLOAD_ENCRYPTION_KEYS is %j, then it is refused without quoting a key', (value, message) => {
    let error: unknown;
    try {
      loadConfig({ ...valid, PAYLOAD_ENCRYPTION_KEYS: value });
    } catch (err) {
      error = err;
    }
    expect((error as ConfigError).message).toMatch(message);
    const secret = value.split(',')[0]!.split(':')[1];
    if (secret) expect((error as ConfigError).message).not.toContain(secret);
  });

  test('when the codec server is configured, then its port, token and the UI origins are kept; the embedded UI is allowed by default', () => {
    const embedded = loadConfig({ ...valid, PAYLOAD_ENCRYPTION_KEYS: KEY }).codec;
    expect(embedded).toEqual(expect.objectContaining({ port: 8234, token: undefined, corsOrigins: ['http://127.0.0.1:8233', 'http://localhost:8233'] }));
    const token = 'x'.repeat(40);
    const cluster = loadConfig({ ...valid, PAYLOAD_ENCRYPTION_KEYS: KEY, TEMPORAL_ADDRESS: 't:7233', CODEC_AUTH_TOKEN: token, CODEC_CORS_ORIGINS: 'https://ui.example.com/' }).codec;
    expect(cluster).toEqual(expect.objectContaining({ token, corsOrigins: ['https://ui.example.com'] }));
    expect(() => loadConfig({ ...valid, CODEC_AUTH_TOKEN: 'short' })).toThrow(/CODEC_AUTH_TOKEN: must be at least 32 characters/);
    expect(() => loadConfig({ ...valid, CODEC_CORS_ORIGINS: 'https://ui.example.com/path' })).toThrow(/CODEC_CORS_ORIGINS: must be comma-separated origins/);
  });

  test('when the codec server runs as its own process, then it needs the keys, a token and the UI origins, and nothing of Stripe', () => {
    expect(() => loadCodecServerConfig({})).toThrow(
      expect.objectContaining({
        problems: [expect.stringMatching(/^PAYLOAD_ENCRYPTION_KEYS/), expect.stringMatching(/^CODEC_AUTH_TOKEN/), expect.stringMatching(/^CODEC_CORS_ORIGINS/)],
      }),
    );
    const config = loadCodecServerConfig({ PAYLOAD_ENCRYPTION_KEYS: KEY, CODEC_AUTH_TOKEN: 't'.repeat(32), CODEC_CORS_ORIGINS: 'http://127.0.0.1:8080' });
    expect(config).toEqual(expect.objectContaining({ port: 8234, encrypt: true, corsOrigins: ['http://127.0.0.1:8080'] }));
  });

  test('when the codec server is behind a proxy, then TRUST_PROXY says whose word on HTTPS it takes (loopback by default)', () => {
    const own = { PAYLOAD_ENCRYPTION_KEYS: KEY, CODEC_AUTH_TOKEN: 't'.repeat(32), CODEC_CORS_ORIGINS: 'http://127.0.0.1:8080' };
    expect(loadCodecServerConfig(own).trustProxy).toEqual(['loopback']);
    expect(loadCodecServerConfig({ ...own, TRUST_PROXY: '10.0.0.0/8' }).trustProxy).toEqual(['10.0.0.0/8']);
    expect(() => loadCodecServerConfig({ ...own, TRUST_PROXY: 'sometimes' })).toThrow(/TRUST_PROXY: must be/);
    expect(loadConfig({ ...valid, TRUST_PROXY: 'false' }).codec.trustProxy).toBe(false);
  });
});
