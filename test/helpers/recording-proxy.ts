import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request that went through the proxy, and what the server behind it answered. */
export interface RecordedRequest {
  method: string;
  /** Path and query, as sent: `/v1/checkout/sessions?created[gte]=...` (decoded). */
  url: string;
  query: URLSearchParams;
  /** The form body of a POST, parsed. */
  form: URLSearchParams;
  headers: IncomingHttpHeaders;
  status: number;
  body: unknown;
}

export interface RecordingProxy {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of a JSON API (stripe-mock) that records each request the product sends
 * and the answer it got, so a test can check the request on the wire (its parameters, its
 * Idempotency-Key). `rewrite` may change an answer before the product sees it, to steer the product
 * down a branch stripe-mock's fixtures never take (a list with more pages).
 */
export async function startRecordingProxy(target: string, rewrite?: (request: RecordedRequest) => unknown): Promise<RecordingProxy> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const sent = Buffer.concat(chunks).toString('utf8');
      forward(target, req, sent)
        .then(({ status, body }) => {
          const url = decodeURIComponent(req.url ?? '');
          const recorded: RecordedRequest = {
            method: req.method ?? 'GET',
            url,
            query: new URL(req.url ?? '', 'http://proxy.test').searchParams,
            form: new URLSearchParams(sent),
            headers: req.headers,
            status,
            body,
          };
          requests.push(recorded);
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(rewrite ? rewrite(recorded) : body));
        })
        .catch((err: unknown) => {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(String(err));
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}

async function forward(target: string, req: http.IncomingMessage, body: string): Promise<{ status: number; body: unknown }> {
  const headers = Object.fromEntries(
    Object.entries(req.headers).filter(([name, value]) => typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name)),
  ) as Record<string, string>;
  const response = await fetch(`${target}${req.url ?? ''}`, { method: req.method, headers, body: req.method === 'GET' ? undefined : body });
  return { status: response.status, body: await response.json() };
}
