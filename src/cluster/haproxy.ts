import fs from 'node:fs';
import path from 'node:path';
import { startProcess, waitForPort, type ManagedProcess } from './processes';

/** Debian's HAProxy (installed by `npm run provision`). */
export const HAPROXY = '/usr/sbin/haproxy';

/**
 * HAProxy in front of the ingress processes, as a load balancer would be in production: round
 * robin, health checks on /healthz, and X-Forwarded-For replaced with the address HAProxy saw, so
 * the ingress (TRUST_PROXY=loopback) sees each customer's address and no customer can pick another
 * by sending the header. A request an ingress could not take (it died mid-connection) is
 * retried on the other one: webhooks are idempotent.
 */
export async function startHaproxy(options: {
  dir: string;
  port: number;
  backends: number[];
  onLine?: (line: string) => void;
}): Promise<{ url: string; process: ManagedProcess; stop(): Promise<void> }> {
  fs.mkdirSync(options.dir, { recursive: true });
  const configFile = path.join(options.dir, 'haproxy.cfg');
  fs.writeFileSync(configFile, haproxyConfig(options.port, options.backends));
  // -db: stay in the foreground, so stopping the child stops the proxy.
  const proc = startProcess(HAPROXY, ['-db', '-f', configFile], { onLine: options.onLine });
  try {
    await waitForPort(options.port, proc.child);
  } catch (err) {
    await proc.stop();
    throw new Error(`HAProxy did not start: ${(err as Error).message}\n${proc.output()}`);
  }
  return { url: `http://127.0.0.1:${options.port}`, process: proc, stop: () => proc.stop('SIGTERM') };
}

/** The cluster's HAProxy configuration: deploy/haproxy.cfg's settings, on loopback, with the ingress processes' ports. */
export function haproxyConfig(port: number, backends: number[]): string {
  const servers = backends.map((backend, i) => `  server ingress-${i + 1} 127.0.0.1:${backend} check inter 1s fall 2 rise 1`).join('\n');
  return `# Written by npm run cluster.
global
  maxconn 4096

defaults
  mode http
  log stdout format raw local0 warning
  option httplog
  timeout connect 2s
  timeout client 30s
  # A slow client cannot hold a connection: 10 s for a request's headers, 5 s idle between
  # kept-alive requests, as the ingress's own bounds (SERVER_BOUNDS in src/ingress/app.ts).
  timeout http-request 10s
  timeout http-keep-alive 5s
  timeout server 30s
  retries 3
  option redispatch
  retry-on conn-failure empty-response

frontend checkout
  bind 127.0.0.1:${port}
  # Prometheus scrapes each ingress directly: /metrics is not for the internet.
  http-request deny deny_status 404 if { path_beg -i /metrics }
  # X-Forwarded-For is the address HAProxy saw, whatever the client sent (option forwardfor would
  # append to the client's own): the ingress believes this one hop, so no client picks its bucket.
  http-request set-header X-Forwarded-For %[src]
  default_backend ingress

backend ingress
  balance roundrobin
  option httpchk GET /healthz
${servers}
`;
}
