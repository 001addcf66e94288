/**
 * Compose's HAProxy (deploy/haproxy.cfg) and the one `npm run cluster` writes (src/cluster/haproxy.ts)
 * are the same proxy: their defaults (the client timeouts among them) and their frontend rules (the
 * X-Forwarded-For the ingress believes among them) must not drift apart, nor from the ingress's
 * own bounds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { haproxyConfig } from '../../src/cluster/haproxy';
import { SERVER_BOUNDS } from '../../src/ingress/app';

/** The settings of a section (`defaults`, `frontend checkout`, ...), comments left out. */
function sectionOf(config: string, name: string): string[] {
  const lines = config.split('\n');
  const start = lines.indexOf(name);
  expect(start).toBeGreaterThanOrEqual(0);
  const section: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line !== '' && !line.startsWith(' ')) break; // the next section
    if (line.trim() !== '' && !line.trim().startsWith('#')) section.push(line.trim());
  }
  return section;
}

const composeConfig = fs.readFileSync(path.join(__dirname, '../../deploy/haproxy.cfg'), 'utf8');
const clusterConfig = haproxyConfig(8080, [4242, 4243]);
const compose = sectionOf(composeConfig, 'defaults');
const cluster = sectionOf(clusterConfig, 'defaults');
/** The frontend's rules; only where it listens differs. */
const frontendRules = (config: string) => sectionOf(config, 'frontend checkout').filter((line) => !line.startsWith('bind '));

test('when the cluster writes its HAProxy config, then its defaults and its frontend rules are exactly those of deploy/haproxy.cfg', () => {
  expect(cluster).toEqual(compose);
  expect(frontendRules(clusterConfig)).toEqual(frontendRules(composeConfig));
});

test('when a client is slow, then HAProxy bounds its headers and its idle keep-alive as the ingress does', () => {
  expect(compose).toContain(`timeout http-request ${SERVER_BOUNDS.headersTimeoutMs / 1000}s`);
  expect(compose).toContain(`timeout http-keep-alive ${SERVER_BOUNDS.keepAliveTimeoutMs / 1000}s`);
  expect(compose).toContain('timeout client 30s');
});

test.each([
  ['deploy/haproxy.cfg', composeConfig],
  ['the cluster', clusterConfig],
])('when a client sends its own X-Forwarded-For to the HAProxy of %s, then it is replaced by the address HAProxy saw, never appended to', (_name, config) => {
  expect(frontendRules(config)).toContain('http-request set-header X-Forwarded-For %[src]');
  expect(config).not.toMatch(/^\s*option\s+forwardfor/m);
});
