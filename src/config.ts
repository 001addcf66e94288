import path from 'node:path';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { z } from 'zod';
import { DEFAULT_TASK_QUEUE } from '../workflows/definitions';
import { parseStripeApiBase, type StripeApiBase } from './stripe/sessions';

const port = z.coerce.number().int().min(0).max(65535);
const optional = z
  .string()
  .optional()
  .transform((value) => (value === '' ? undefined : value));

/**
 * Every setting, from the environment, validated once at start-up with every problem listed.
 * Temporal connection settings beyond the address (namespace, TLS, API key, profiles) are read by
 * the SDK's own `@temporalio/envconfig` from the standard TEMPORAL_* variables.
 */
const schema = z.object({
  PORT: port.default(4242),
  HOST: z.string().min(1).default('127.0.0.1'),
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
  STRIPE_MAX_READS_PER_SECOND: z.coerce.number().positive().default(20),
  STRIPE_API_BASE: optional.pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional()),
  TEMPORAL_ADDRESS: optional,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  TEMPORAL_DEV_SERVER_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  DATABASE_URL: optional.pipe(z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// URL' }).optional()),
  SMTP_URL: optional.pipe(z.url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' }).optional()),
  EMAIL_FROM: z.string().min(3).default('Shop <orders@shop.localhost>'),
  MERCHANT_NAME: z.string().min(1).default('Shop'),
  PAYMENT_DEADLINE: z
    .string()
    .default('7 days')
    .refine(isDuration, 'must be a duration such as "7 days" or "36 hours"'),
});

export interface Config {
  port: number;
  /** Where the ingress listens: loopback by default, 0.0.0.0 in a container. */
  host: string;
  dataDir: string;
  stripe: {
    secretKey: string;
    webhookSecrets: string[];
    apiBase?: StripeApiBase;
    /** Cap on retrieve-session calls per second, for the whole cluster. */
    maxReadsPerSecond: number;
  };
  temporal: {
    /** Unset: run the embedded dev server. */
    address?: string;
    namespace: string;
    taskQueue: string;
    devServerPort: number;
    uiPort: number;
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

/** Reads the whole configuration, listing every problem at once rather than the first. Never echoes a value. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, role: Role = 'all'): Config {
  const parsed = schema.safeParse(env);
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`)),
    ...roleProblems(env, role),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  const dataDir = path.resolve(e.DATA_DIR);
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir,
    stripe: {
      secretKey: e.STRIPE_SECRET_KEY,
      webhookSecrets: e.STRIPE_WEBHOOK_SECRET,
      apiBase: e.STRIPE_API_BASE ? parseStripeApiBase(e.STRIPE_API_BASE) : undefined,
      maxReadsPerSecond: e.STRIPE_MAX_READS_PER_SECOND,
    },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      devServerPort: e.TEMPORAL_DEV_SERVER_PORT,
      uiPort: e.TEMPORAL_UI_PORT,
    },
    databaseUrl: e.DATABASE_URL,
    email: {
      smtpUrl: e.SMTP_URL,
      from: e.EMAIL_FROM,
      domain: /@([^>\s]+)/.exec(e.EMAIL_FROM)?.[1] ?? 'localhost',
      outboxDir: path.join(dataDir, 'outbox'),
    },
    merchantName: e.MERCHANT_NAME,
    paymentDeadline: e.PAYMENT_DEADLINE as Duration, // checked by isDuration above
  };
}

function isDuration(value: string): boolean {
  try {
    return msToNumber(value as Parameters<typeof msToNumber>[0]) > 0;
  } catch {
    return false;
  }
}
