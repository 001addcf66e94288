import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type ErrorRequestHandler, type NextFunction, type Request, type Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { CodecServerConfig } from '../config';
import { listen, type IngressLogger, type RunningIngress, type TrustProxy } from '../ingress/app';
import { AesGcmCodec, PayloadDecryptionError } from './encryption';

/**
 * The codec server: Temporal's remote codec protocol (`POST /decode`, `POST /encode`, a JSON body
 * `{"payloads": [{"metadata": {k: base64}, "data": base64}]}`), so the Temporal UI and CLI show
 * decrypted payloads to operators, and to nobody else.
 *
 * - Authentication: `Authorization: Bearer <CODEC_AUTH_TOKEN>` (the CLI's `--codec-auth`), or the
 *   session cookie `/login` sets after the operator pastes the token, which the UI sends when its
 *   codec settings include cross-origin credentials. Nothing is decoded without one.
 * - Sessions live in this process's memory: "Sign out" ends one, "Sign out every session"
 *   (`POST /logout-all`) ends them all, and so does a restart, without changing the token.
 * - CORS: only the Temporal UI's origins may call it from a browser, with credentials.
 */
export interface CodecServerOptions {
  codec: PayloadCodec;
  token: string;
  corsOrigins: string[];
  logger: IngressLogger;
  /** Signed-in sessions last this long. Default 12 hours. */
  sessionMs?: number;
  /** Express's `trust proxy`: whose X-Forwarded-Proto says the operator came over HTTPS (the cookie is then Secure). Default loopback. */
  trustProxy?: TrustProxy;
  /**
   * PAYLOAD_ENCRYPTION=on: `/encode` answers 422. The UI and the CLI say nothing about whose
   * payload they encode, so what it made would be bound to no workflow, and the workers would
   * refuse it (a signal sent so would fail its workflow's task until an operator resets it).
   */
  refuseEncode?: boolean;
}

const SESSION_COOKIE = 'codec_session';
const BODY_LIMIT = '16mb'; // the UI decodes a whole history page at once
const ALLOWED_HEADERS = 'Authorization, Content-Type, X-Namespace';
// The pages are plain forms with inline styles; no other site may frame them (clickjacking the sign-in).
const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export function createCodecServerApp(options: CodecServerOptions): express.Express {
  const { codec, token, logger } = options;
  const origins = new Set(options.corsOrigins);
  const sessionMs = options.sessionMs ?? 12 * 3_600_000;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy ?? 'loopback');

  app.use((_req, res, next) => {
    res.set({
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Frame-Options': 'DENY',
    });
    next();
  });

  // Session ID -> expiry (ms). In memory: one process serves the sessions it made, and a restart ends them all.
  const sessions = new Map<string, number>();
  const signedIn = (req: Request): boolean => {
    const id = readCookie(req, SESSION_COOKIE);
    return id !== undefined && (sessions.get(id) ?? 0) > Date.now();
  };

  // CORS for the API only: /login is a page and a plain form post, which browsers send without CORS.
  const crossOrigin = (req: Request, res: Response, next: NextFunction) => {
    const origin = req.get('Origin');
    if (origin === undefined) return next(); // not a browser's cross-origin call (the CLI, curl)
    res.vary('Origin');
    if (!origins.has(origin)) {
      logger.warn('Codec server: refused a browser call from an origin not in CODEC_CORS_ORIGINS', { origin });
      res.status(403).json({ error: `origin ${origin} may not call this codec server (CODEC_CORS_ORIGINS)` });
      return;
    }
    res.set({ 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true' });
    if (req.method === 'OPTIONS') {
      res.set({ 'Access-Control-Allow-Methods': 'POST', 'Access-Control-Allow-Headers': ALLOWED_HEADERS, 'Access-Control-Max-Age': '600' });
      res.status(204).end();
      return;
    }
    next();
  };
  app.use(['/decode', '/encode'], crossOrigin);

  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));

  const loginLimit = rateLimit({ windowMs: 60_000, limit: 10, standardHeaders: 'draft-8', legacyHeaders: false });
  app.get('/login', (_req, res) => void res.type('html').send(loginPage()));
  app.post('/login', loginLimit, express.urlencoded({ extended: false, limit: '4kb' }), (req: Request, res: Response) => {
    const offered = typeof req.body?.token === 'string' ? (req.body.token as string) : '';
    if (!sameSecret(offered, token)) {
      logger.warn('Codec server: sign-in refused (wrong token)', { ip: req.ip });
      res.status(401).type('html').send(loginPage('That is not the codec server’s token.'));
      return;
    }
    for (const [id, expires] of sessions) if (expires <= Date.now()) sessions.delete(id);
    const id = randomBytes(32).toString('base64url');
    sessions.set(id, Date.now() + sessionMs);
    // req.secure: HTTPS here, or X-Forwarded-Proto from a trusted proxy (trust proxy).
    res.cookie(SESSION_COOKIE, id, { httpOnly: true, sameSite: 'strict', secure: req.secure, maxAge: sessionMs, path: '/' });
    logger.info('Codec server: operator signed in', { ip: req.ip });
    res.type('html').send(signedInPage(sessionMs));
  });
  app.post('/logout', (req, res) => {
    const id = readCookie(req, SESSION_COOKIE);
    if (id !== undefined) sessions.delete(id);
    res.clearCookie(SESSION_COOKIE, { path: '/' });
    res.type('html').send(loginPage('Signed out.'));
  });

  const authenticated = (req: Request, res: Response, next: NextFunction) => {
    const bearer = /^Bearer (.+)$/i.exec(req.get('Authorization') ?? '')?.[1];
    if ((bearer !== undefined && sameSecret(bearer, token)) || signedIn(req)) return next();
    logger.warn('Codec server: refused an unauthenticated call', { path: req.path, ip: req.ip });
    res
      .status(401)
      .set('WWW-Authenticate', 'Bearer realm="codec"')
      .json({ error: 'a bearer token (CODEC_AUTH_TOKEN) or a signed-in session (/login) is required' });
  };
  const json = express.json({ limit: BODY_LIMIT, type: 'application/json' });

  // A cookie that may have leaked: any signed-in operator, or the token's holder, ends every session.
  app.post('/logout-all', authenticated, (req, res) => {
    const count = sessions.size;
    sessions.clear();
    logger.warn('Codec server: every session signed out', { sessions: count, ip: req.ip });
    res.clearCookie(SESSION_COOKIE, { path: '/' });
    res.type('html').send(loginPage('Every session is signed out.'));
  });

  for (const direction of ['decode', 'encode'] as const) {
    app.post(`/${direction}`, authenticated, json, async (req: Request, res: Response) => {
      const payloads = parsePayloads(req.body);
      if (typeof payloads === 'string') {
        res.status(400).json({ error: payloads });
        return;
      }
      if (direction === 'encode' && options.refuseEncode) {
        logger.warn('Codec server: refused to encode (PAYLOAD_ENCRYPTION=on)', { count: payloads.length, ip: req.ip });
        res.status(422).json({
          error:
            'this codec server does not encode: with PAYLOAD_ENCRYPTION=on a payload must be bound to its workflow, which the UI and the CLI do not say, ' +
            'and the workers refuse one bound to none. Act on orders through the product (npm run redrive)',
        });
        return;
      }
      const result = direction === 'decode' ? await codec.decode(payloads) : await codec.encode(payloads);
      logger.debug(`Codec server: ${direction}d payloads`, { count: payloads.length, namespace: req.get('X-Namespace'), ip: req.ip });
      res.json({ payloads: result.map(toJsonPayload) });
    });
  }

  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    if (err instanceof PayloadDecryptionError) {
      res.status(422).json({ error: err.message });
      return;
    }
    const status = (err as { status?: number }).status;
    if (status && status >= 400 && status < 500) {
      res.status(status).json({ error: (err as Error).message });
      return;
    }
    logger.error('Codec server: request failed', { error: String(err) });
    res.status(500).json({ error: 'internal error' });
  };
  app.use(onError);
  return app;
}

/**
 * The codec server on `config.host:config.port`, with the configured keys (the first encrypts, if
 * encryption is on and not strict). It decodes for display: a payload bound to a workflow opens
 * with the binding its metadata names (the UI does not say whose it is), and payloads in clear are
 * shown as they are, sdk-core's marker bookkeeping among them; what the workers refused shows as
 * the workflow task failure that follows it.
 */
export function startCodecServer(config: CodecServerConfig & { token: string }, logger: IngressLogger): Promise<RunningIngress> {
  const app = createCodecServerApp({
    codec: new AesGcmCodec(config.keys, { encrypt: config.encrypt, strict: config.strict, forDisplay: true }),
    refuseEncode: config.strict,
    token: config.token,
    corsOrigins: config.corsOrigins,
    trustProxy: config.trustProxy,
    logger,
  });
  return listen(app, config.port ?? 0, config.host);
}

export interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The protocol's JSON payloads (proto3 JSON: bytes as base64), or what is wrong with them. */
function parsePayloads(body: unknown): Payload[] | string {
  const payloads = (body as { payloads?: unknown } | undefined)?.payloads;
  if (!Array.isArray(payloads)) return 'expected a JSON body {"payloads": [...]}';
  const parsed: Payload[] = [];
  for (const [index, item] of payloads.entries()) {
    const { metadata = {}, data = '' } = (item ?? {}) as JsonPayload;
    if (typeof metadata !== 'object' || metadata === null || typeof data !== 'string' || !BASE64.test(data)) {
      return `payload ${index}: expected {"metadata": {name: base64}, "data": base64}`;
    }
    const entries = Object.entries(metadata);
    if (entries.some(([, value]) => typeof value !== 'string' || !BASE64.test(value))) return `payload ${index}: metadata values must be base64`;
    parsed.push({
      metadata: Object.fromEntries(entries.map(([key, value]) => [key, Buffer.from(value, 'base64')])),
      data: Buffer.from(data, 'base64'),
    });
  }
  return parsed;
}

/** A payload as the codec protocol's JSON carries it. */
export function toJsonPayload(payload: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value).toString('base64')])),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  };
}

function sameSecret(offered: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(offered), digest(expected));
}

function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.get('Cookie') ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

function page(body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Codec server</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}input{width:100%;padding:.4rem}</style></head>
<body><h1>Payload codec server</h1>${body}</body></html>`;
}

function loginPage(notice?: string): string {
  return page(`${notice ? `<p><strong>${notice}</strong></p>` : ''}
<p>Sign in with the codec server's token (<code>CODEC_AUTH_TOKEN</code>) so the Temporal UI, in this browser, can show decrypted payloads.</p>
<form method="post" action="login"><label>Token <input name="token" type="password" autocomplete="off" autofocus></label>
<p><button type="submit">Sign in</button></p></form>`);
}

function signedInPage(sessionMs: number): string {
  return page(`<p>Signed in for ${Math.round(sessionMs / 3_600_000)} hours. In the Temporal UI's codec server settings, make sure the
endpoint is this server and <em>Include cross-origin credentials</em> is on, then reload a workflow.</p>
<form method="post" action="logout"><button type="submit">Sign out</button></form>
<form method="post" action="logout-all"><p>A cookie may have leaked? End every signed-in session, everywhere (bearer tokens keep working):</p>
<button type="submit">Sign out every session</button></form>`);
}
