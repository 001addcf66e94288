import { ConfigError, loadConfig } from '../../src/config';

const valid = { STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_WEBHOOK_SECRET: 'whsec_one' };

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
    const split = { STRIPE_SECRET_KEY: 'sk_test_abc', TEMPORAL_ADDRESS: 'temporal:7233', DATABASE_URL: 'postgres://db/x' };
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
});
