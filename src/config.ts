import net from 'node:net';
import path from 'node:path';
import type { Duration } from '@temporalio/common';
import { z } from 'zod';
import { DEFAULT_TASK_QUEUE } from '../workflows/definitions';
import type { TrustProxy } from './ingress/app';
import { durationMs } from './shared/duration';
import { DEFAULT_REQUESTS_PER_SECOND, shareOut, type BudgetShares } from './stripe/request-budget';
import { parseStripeApiBase, type StripeApiBase } from './stripe/sessions';
import { parseKeyEntries, type EncryptionKey, type PayloadEncryption } from './temporal/encryption';

// Digits only: an empty PORT is a mistake, not "any free port" (write 0 for that).
const port = z
  .string()
  .regex(/^\d+$/, 'must be a port number (0-65535)')
  .transform(Number)
  .pipe(z.number().max(65535, 'must be a port number (0-65535)'));
const optional = z
  .string()
  .optional()
  .transform((value) => (value === '' ? undefined : value));
const requestsPerSecond = optional.pipe(
  z
    .string()
    .regex(/^\s*\d+(\.\d+)?\s*$/, 'must be a number of requests per second, such as 20')
    .transform(Number)
    .pipe(
      z
        .number()
        .positive('must be more than 0 requests per second')
        .max(10_000, 'must be at most 10000 requests per second (Stripe allows 100 in live mode, 25 in test mode)'),
    )
    .optional(),
);

/**
 * Every setting, from the environment, validated once at start-up with every problem listed.
 * Temporal connection settings beyond the address (namespace, TLS, API key, profiles) are read by
 * the SDK's own `@temporalio/envconfig` from the standard TEMPORAL_* variables.
 */
const schema = z.object({
  PORT: port.default(4242),
  HOST: z.string().min(1).default('127.0.0.1'),
  // The worker-only process's /metrics (the ingress serves its own on PORT).
  METRICS_PORT: z.union([z.literal('off'), port], { error: 'must be a port number (0-65535) or "off"' }).default(9464),
  DATA_DIR: z.string().min(1).default('.data'),
  STRIPE_SECRET_KEY: z
    .string({ error: 'is required (a Stripe secret or restricted key, sk_test_... or rk_test_...)' })
    .regex(/^(sk|rk)_(test|live)_\w+$/, 'must look like sk_test_..., sk_live_..., rk_test_... or rk_live_...'),
  // Required by the ingress (checked where it starts); a worker alone does not verify webhooks.
  STRIPE_WEBHOOK_SECRET: z
    .string()
    .default('')
    .transform((value) => value.split(',').map((secret) => secret.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^whsec_\w+$/, 'each secret must look like whsec_...'))),
  // The budget of Stripe requests for every process together; unset: a default for the key's mode.
  STRIPE_REQUESTS_PER_SECOND: requestsPerSecond,
  // Its old name, still read.
  STRIPE_MAX_READS_PER_SECOND: requestsPerSecond,
  STRIPE_API_BASE: optional.pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional()),
  TEMPORAL_ADDRESS: optional,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  TEMPORAL_DEV_SERVER_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  WORKER_CACHED_WORKFLOWS: z.coerce.number().int().min(2).max(100_000).default(100),
  DATABASE_URL: optional.pipe(z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// URL' }).optional()),
  SMTP_URL: optional.pipe(
    z
      .url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' })
      .refine((url) => new URL(url).hostname !== '', 'must name a host, e.g. smtp://user:pass@mail.example.com:587')
      .optional(),
  ),
  EMAIL_FROM: z.string().min(3).default('Shop <orders@shop.localhost>'),
  MERCHANT_NAME: z.string().min(1).default('Shop'),
  PAYMENT_DEADLINE: z
    .string()
    .default('7 days')
    .refine(
      (value) => isDurationWithin(value, MIN_PAYMENT_DEADLINE_MS, MAX_PAYMENT_DEADLINE_MS),
      'must be a duration between 1 hour and 365 days, such as "7 days" or "36 hours"',
    ),
  RECONCILE_EVERY: z
    .string()
    .default('15 minutes')
    .refine((value) => value === 'off' || isDurationWithin(value, 60_000, 7 * 86_400_000), 'must be "off" or a duration between 1 minute and 7 days'),
  RECONCILE_LOOKBACK: z
    .string()
    .default('3 days')
    .refine((value) => isDurationWithin(value, 3_600_000, 90 * 86_400_000), 'must be a duration between 1 hour and 90 days'),
  RECONCILE_STUCK_AFTER: z
    .string()
    .default('1 hour')
    .refine((value) => isDurationWithin(value, 5 * 60_000, 30 * 86_400_000), 'must be a duration between 5 minutes and 30 days'),
  PAYLOAD_ENCRYPTION: z.enum(['on', 'permissive', 'off'], { error: 'must be "on", "permissive" or "off"' }).optional(),
  PAYLOAD_ENCRYPTION_KEYS: z
    .string()
    .default('')
    .transform((value, ctx) => {
      const keys = parseKeyEntries(value);
      if (typeof keys === 'string') {
        ctx.addIssue({ code: 'custom', message: keys });
        return z.NEVER;
      }
      return keys;
    }),
  CODEC_PORT: z.union([z.literal('off'), port], { error: 'must be a port number (0-65535) or "off"' }).default(8234),
  CODEC_AUTH_TOKEN: optional.pipe(z.string().min(32, 'must be at least 32 characters (openssl rand -hex 32)').optional()),
  CODEC_CORS_ORIGINS: z
    .string()
    .default('')
    .transform((value) => value.split(',').map((origin) => origin.trim().replace(/\/$/, '')).filter(Boolean))
    .refine((origins) => origins.every(isOrigin), 'must be comma-separated origins such as https://temporal-ui.example.com (scheme, host and port only)'),
  TRUST_PROXY: z
    .string()
    .default('loopback')
    .transform(parseTrustProxy)
    .refine((value) => value !== undefined, 'must be true, false, a number of hops, or comma-separated addresses/subnets (loopback, 10.0.0.0/8, ...)'),
});

// Below an hour a delayed payment method cannot settle; the deadline only bounds how long we wait.
const MIN_PAYMENT_DEADLINE_MS = 3_600_000;
const MAX_PAYMENT_DEADLINE_MS = 365 * 86_400_000;

export interface Config {
  port: number;
  /** Where the ingress listens: loopback by default, 0.0.0.0 in a container. */
  host: string;
  /** Where a worker-only process serves /metrics (on `host`); null: not served. */
  metricsPort: number | null;
  dataDir: string;
  stripe: {
    secretKey: string;
    webhookSecrets: string[];
    /** From the key's prefix (`sk_live_`, `rk_live_`): events of the other mode are refused. */
    livemode: boolean;
    apiBase?: StripeApiBase;
    /**
     * Stripe requests per second for every process together, and its two shares: the landing
     * page's existence checks and fulfillment (src/stripe/request-budget.ts).
     */
    budget: BudgetShares;
  };
  temporal: {
    /** Unset: run the embedded dev server. */
    address?: string;
    namespace: string;
    taskQueue: string;
    devServerPort: number;
    uiPort: number;
    /** Executions kept in the worker's memory between tasks; the rest are replayed from history when they wake. */
    cachedWorkflows: number;
  };
  databaseUrl?: string;
  email: {
    smtpUrl?: string;
    from: string;
    /** The domain of deterministic Message-IDs, from EMAIL_FROM. */
    domain: string;
    outboxDir: string;
  };
  merchantName: string;
  paymentDeadline: Duration;
  /** Express's `trust proxy` for the ingress (`TRUST_PROXY`). */
  trustProxy: TrustProxy;
  reconciler: {
    /** Null: turned off. */
    every: Duration | null;
    lookback: Duration;
    stuckAfter: Duration;
  };
  /** On by default with a Temporal cluster; the embedded dev server stores plaintext unless keys are given. */
  encryption: PayloadEncryption;
  codec: CodecServerConfig;
}

/** The codec server: decodes payloads for the Temporal UI and CLI, for holders of the token only. */
export interface CodecServerConfig {
  /** Null: not served. */
  port: number | null;
  host: string;
  /** Unset in `npm start`: one is made and kept in the data directory. */
  token?: string;
  /** The Temporal UI's origins, the only ones a browser may call it from. */
  corsOrigins: string[];
  keys: EncryptionKey[];
  /** Whether `/encode` encrypts (PAYLOAD_ENCRYPTION), as the workers do. */
  encrypt: boolean;
  /** PAYLOAD_ENCRYPTION=on: `/encode` is refused (it cannot bind a payload to its workflow, and the workers would refuse it). */
  strict: boolean;
  /** Express's `trust proxy` (`TRUST_PROXY`): an HTTPS proxy it trusts makes the sign-in cookie Secure. */
  trustProxy: TrustProxy;
}

/** Which processes this one runs: both (`npm start`), or one of them when scaled out. */
export type Role = 'all' | 'worker' | 'ingress';

/** What a role needs beyond the schema: the ingress verifies webhooks; split processes share Temporal and PostgreSQL. */
function roleProblems(env: NodeJS.ProcessEnv, role: Role): string[] {
  const problems: string[] = [];
  if (role !== 'worker' && !env.STRIPE_WEBHOOK_SECRET) {
    problems.push('STRIPE_WEBHOOK_SECRET: is required (whsec_..., from `stripe listen` or the webhook endpoint; comma-separate several to rotate)');
  }
  if (role !== 'all' && !env.TEMPORAL_ADDRESS) {
    problems.push('TEMPORAL_ADDRESS: is required when the worker and ingress run as separate processes');
  }
  if (role !== 'all' && !env.DATABASE_URL) {
    problems.push('DATABASE_URL: is required when the worker and ingress run as separate processes (PGlite serves one process)');
  }
  return problems;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Start-up refused for a reason outside the variables themselves (the cluster, a module named by one): one line saying what to do. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** Reads the whole configuration, listing every problem at once rather than the first. Never echoes a value. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, role: Role = 'all'): Config {
  const parsed = schema.safeParse(env);
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`)),
    ...roleProblems(env, role),
  ];
  const missingKeys = missingKeysProblem(env);
  if (missingKeys) problems.push(missingKeys);
  if (parsed.success && parsed.data.STRIPE_REQUESTS_PER_SECOND !== undefined && parsed.data.STRIPE_MAX_READS_PER_SECOND !== undefined) {
    if (parsed.data.STRIPE_REQUESTS_PER_SECOND !== parsed.data.STRIPE_MAX_READS_PER_SECOND) {
      problems.push('STRIPE_REQUESTS_PER_SECOND: differs from STRIPE_MAX_READS_PER_SECOND, its old name; set only one');
    }
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  const dataDir = path.resolve(e.DATA_DIR);
  return {
    port: e.PORT,
    host: e.HOST,
    metricsPort: e.METRICS_PORT === 'off' ? null : e.METRICS_PORT,
    dataDir,
    stripe: {
      secretKey: e.STRIPE_SECRET_KEY,
      webhookSecrets: e.STRIPE_WEBHOOK_SECRET,
      livemode: livemodeOf(e.STRIPE_SECRET_KEY),
      apiBase: e.STRIPE_API_BASE ? parseStripeApiBase(e.STRIPE_API_BASE) : undefined,
      budget: shareOut(
        e.STRIPE_REQUESTS_PER_SECOND ?? e.STRIPE_MAX_READS_PER_SECOND ?? DEFAULT_REQUESTS_PER_SECOND[livemodeOf(e.STRIPE_SECRET_KEY) ? 'live' : 'test'],
      ),
    },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      devServerPort: e.TEMPORAL_DEV_SERVER_PORT,
      uiPort: e.TEMPORAL_UI_PORT,
      cachedWorkflows: e.WORKER_CACHED_WORKFLOWS,
    },
    databaseUrl: e.DATABASE_URL,
    email: {
      smtpUrl: e.SMTP_URL,
      from: e.EMAIL_FROM,
      domain: /@([^>\s]+)/.exec(e.EMAIL_FROM)?.[1] ?? 'localhost',
      outboxDir: path.join(dataDir, 'outbox'),
    },
    merchantName: e.MERCHANT_NAME,
    paymentDeadline: e.PAYMENT_DEADLINE as Duration, // checked by isDurationWithin above
    trustProxy: e.TRUST_PROXY!,
    reconciler: {
      every: e.RECONCILE_EVERY === 'off' ? null : (e.RECONCILE_EVERY as Duration),
      lookback: e.RECONCILE_LOOKBACK as Duration,
      stuckAfter: e.RECONCILE_STUCK_AFTER as Duration,
    },
    encryption: { keys: e.PAYLOAD_ENCRYPTION_KEYS, ...encryptionFlags(encryptionMode(env)) },
    codec: {
      port: e.CODEC_PORT === 'off' ? null : e.CODEC_PORT,
      host: e.HOST,
      token: e.CODEC_AUTH_TOKEN,
      // The embedded UI's own origins unless told otherwise.
      corsOrigins:
        e.CODEC_CORS_ORIGINS.length > 0 || e.TEMPORAL_ADDRESS
          ? e.CODEC_CORS_ORIGINS
          : [`http://127.0.0.1:${e.TEMPORAL_UI_PORT}`, `http://localhost:${e.TEMPORAL_UI_PORT}`],
      keys: e.PAYLOAD_ENCRYPTION_KEYS,
      ...encryptionFlags(encryptionMode(env)),
      trustProxy: e.TRUST_PROXY!,
    },
  };
}

/** `sk_live_` and `rk_live_` keys are live; the others test mode (a sandbox). */
function livemodeOf(secretKey: string): boolean {
  return /^(sk|rk)_live_/.test(secretKey);
}

function missingKeysProblem(env: NodeJS.ProcessEnv): string | undefined {
  if (encryptionMode(env) === 'off' || env.PAYLOAD_ENCRYPTION_KEYS?.trim()) return undefined;
  return (
    'PAYLOAD_ENCRYPTION_KEYS: is required while payloads are encrypted, the default with a Temporal cluster (TEMPORAL_ADDRESS). ' +
    'Generate a key with `npm run --silent encryption-key` and give every worker and ingress the same keys, ' +
    'or set PAYLOAD_ENCRYPTION=off to store payloads in plaintext'
  );
}

/** Payload encryption alone, as `loadConfig` reads it, for tools that talk to Temporal (redrive). */
export function loadPayloadEncryption(env: NodeJS.ProcessEnv): PayloadEncryption {
  const keys = loadSetting(env, 'PAYLOAD_ENCRYPTION_KEYS');
  const missingKeys = missingKeysProblem(env);
  if (missingKeys) throw new ConfigError([missingKeys]);
  return { keys, ...encryptionFlags(encryptionMode(env)) };
}

type EncryptionMode = 'on' | 'permissive' | 'off';

/**
 * PAYLOAD_ENCRYPTION, or by default on when Temporal is a cluster (TEMPORAL_ADDRESS) or keys are
 * given. `on` is strict: what is not encrypted with our keys for its workflow is refused on
 * decode. `permissive` encrypts as `on` does but also reads plaintext and unbound payloads: for
 * histories written before encryption was turned on, chosen knowingly (docs/security.md).
 */
function encryptionMode(env: NodeJS.ProcessEnv): EncryptionMode {
  const mode = env.PAYLOAD_ENCRYPTION;
  if (mode === 'on' || mode === 'permissive' || mode === 'off') return mode;
  return env.TEMPORAL_ADDRESS || env.PAYLOAD_ENCRYPTION_KEYS?.trim() ? 'on' : 'off';
}

function encryptionFlags(mode: EncryptionMode): { encrypt: boolean; strict: boolean } {
  return { encrypt: mode !== 'off', strict: mode === 'on' };
}

const codecSchema = schema.pick({
  HOST: true,
  CODEC_PORT: true,
  CODEC_AUTH_TOKEN: true,
  CODEC_CORS_ORIGINS: true,
  PAYLOAD_ENCRYPTION: true,
  PAYLOAD_ENCRYPTION_KEYS: true,
  TRUST_PROXY: true,
});

/** The codec server's own process (`npm run codec-server`): the keys, a token, the UI's origins and the proxies it trusts, nothing else. */
export function loadCodecServerConfig(env: NodeJS.ProcessEnv = process.env): CodecServerConfig {
  const parsed = codecSchema.safeParse(env);
  const problems = parsed.success ? [] : parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
  if (!env.PAYLOAD_ENCRYPTION_KEYS) problems.push('PAYLOAD_ENCRYPTION_KEYS: is required (the same keys the workers and ingress use)');
  if (!env.CODEC_AUTH_TOKEN) problems.push('CODEC_AUTH_TOKEN: is required (at least 32 characters: openssl rand -hex 32)');
  if (!env.CODEC_CORS_ORIGINS) problems.push('CODEC_CORS_ORIGINS: is required (the Temporal UI\'s origin, e.g. https://temporal-ui.example.com)');
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  if (e.CODEC_PORT === 'off') throw new ConfigError(['CODEC_PORT: the codec server needs a port']);
  return {
    port: e.CODEC_PORT,
    host: e.HOST,
    token: e.CODEC_AUTH_TOKEN,
    corsOrigins: e.CODEC_CORS_ORIGINS,
    keys: e.PAYLOAD_ENCRYPTION_KEYS,
    // Its own process: on unless told otherwise, whatever TEMPORAL_ADDRESS says.
    ...encryptionFlags(e.PAYLOAD_ENCRYPTION ?? 'on'),
    trustProxy: e.TRUST_PROXY!,
  };
}

type Settings = typeof schema.shape;

/** One setting, validated exactly as `loadConfig` validates it, for tools that need only a few. */
export function loadSetting<K extends keyof Settings>(env: NodeJS.ProcessEnv, name: K): z.output<Settings[K]> {
  const parsed = schema.shape[name].safeParse(env[name]);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => `${name}: ${issue.message}`));
  return parsed.data as z.output<Settings[K]>;
}

/**
 * The configuration for a process about to start: `loadConfig`'s checks plus the ports it will
 * listen on, every problem listed together. A port another process holds would otherwise fail
 * late or, for the embedded Temporal, silently connect us to a foreign server.
 */
export async function loadConfigToStart(env: NodeJS.ProcessEnv, role: Role): Promise<Config> {
  let config: Config | undefined;
  const problems: string[] = [];
  try {
    config = loadConfig(env, role);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  const wanted: [string, string][] = [];
  if (role !== 'worker') wanted.push(['PORT', env.HOST || '127.0.0.1']);
  if (role === 'worker') wanted.push(['METRICS_PORT', env.HOST || '127.0.0.1']);
  if (role === 'all' && env.PAYLOAD_ENCRYPTION_KEYS?.trim()) wanted.push(['CODEC_PORT', env.HOST || '127.0.0.1']);
  if (role === 'all' && !env.TEMPORAL_ADDRESS) wanted.push(['TEMPORAL_DEV_SERVER_PORT', '127.0.0.1'], ['TEMPORAL_UI_PORT', '127.0.0.1']);
  for (const [name, host] of wanted) {
    const parsed = schema.shape[name as 'PORT' | 'METRICS_PORT' | 'CODEC_PORT'].safeParse(env[name]);
    if (!parsed.success || typeof parsed.data !== 'number' || parsed.data === 0) continue; // reported above, off, or any free port
    if (await portInUse(parsed.data, host)) {
      problems.push(`${name}: ${host}:${parsed.data} is already in use by another process; stop it or choose another port`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config!;
}

export function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'));
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

function isDurationWithin(value: string, minMs: number, maxMs: number): boolean {
  try {
    const ms = durationMs(value);
    return ms >= minMs && ms <= maxMs;
  } catch {
    return false;
  }
}

/** `TRUST_PROXY` as Express takes it, or undefined when it is not one of its forms. */
export function parseTrustProxy(value: string): TrustProxy | undefined {
  const trimmed = value.trim();
  if (trimmed === 'true') return true;
  if (trimmed === 'false') return false;
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const entries = trimmed.split(',').map((entry) => entry.trim());
  const valid = entries.every((entry) => {
    if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
    const [address, prefix] = entry.split('/');
    const family = net.isIP(address ?? '');
    if (family === 0) return false;
    return prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
  });
  return valid && entries.length > 0 ? entries : undefined;
}
