import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { TLSConfig } from '@temporalio/client';
import { StartupError } from '../config';
import { writePrivateFile } from '../shared/private-dir';

/**
 * Mutual TLS for the cluster's Temporal frontend: a small CA of its own and the certificates it
 * signs, made at the first start and kept beside the data (keys 0600, like the payload key), then
 * reused. Every client of the frontend (workers and ingress, the UI server, the operator's CLI)
 * shows a certificate of this CA, and the frontend refuses a connection without one.
 *
 * The certificates are made by the `openssl` binary (Debian's; `npm run provision` installs it,
 * and the app image has it): Node's crypto makes the keys but cannot issue X.509 certificates,
 * and openssl is the tool an operator already knows for inspecting or replacing them. Keys are
 * ECDSA P-256, made by Node and written 0600 before openssl sees them.
 *
 * Lifetimes: the CA 5 years, every other certificate 1 year. At each start a certificate that
 * ends within 30 days, was not signed by the kept CA, does not match its key or names other hosts
 * is made again from the same CA, so clients keep trusting the server. A CA that ends within 30
 * days is made again with every certificate (everything the cluster starts reads the new files at
 * that start; an operator's copy elsewhere must be fetched again).
 */

/** Holders of a client certificate: the worker and ingress processes, the UI server, the operator's CLI. */
export const TLS_CLIENTS = ['app', 'ui', 'operator'] as const;
export type TlsClient = (typeof TLS_CLIENTS)[number];

export interface CertPair {
  cert: string;
  key: string;
}

export interface TemporalTlsFiles {
  dir: string;
  /** The CA's certificate: what every client trusts the frontend by, and the frontend trusts clients by. */
  ca: string;
  caKey: string;
  /** The frontend's server certificate. */
  frontend: CertPair;
  /** The server's own services among themselves (history, matching, worker) and its system worker to the frontend: server and client. */
  internode: CertPair;
  clients: Record<TlsClient, CertPair>;
  /** The host name clients check the frontend's certificate for (in its subjectAltName with every other name). */
  serverName: string;
}

export interface TemporalTlsOptions {
  /** Host names in the server certificates; the first is the one clients check. Default: localhost, and `temporal` (compose's service). */
  dnsNames?: string[];
  /** Addresses in the server certificates. Default: 127.0.0.1. */
  ipAddresses?: string[];
  /** Make a certificate again when it ends within this many days. Default 30. */
  renewBeforeDays?: number;
}

export const CA_DAYS = 5 * 365;
export const CERT_DAYS = 365;
export const RENEW_BEFORE_DAYS = 30;
const DEFAULT_DNS_NAMES = ['localhost', 'temporal'];
const DEFAULT_IP_ADDRESSES = ['127.0.0.1'];
const DAY_MS = 86_400_000;

/** Where each file lives in `dir`. */
export function temporalTlsFiles(dir: string, serverName = DEFAULT_DNS_NAMES[0]!): TemporalTlsFiles {
  const pair = (name: string): CertPair => ({ cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}-key.pem`) });
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    caKey: path.join(dir, 'ca-key.pem'),
    frontend: pair('frontend'),
    internode: pair('internode'),
    clients: { app: pair('app'), ui: pair('ui'), operator: pair('operator') },
    serverName,
  };
}

type Profile = 'server' | 'internode' | 'client';

/**
 * The CA and certificates in `dir`: made when missing, made again when due (see above), kept
 * otherwise. `made` names what this call made (empty when everything was reused).
 */
export function keptTemporalTls(dir: string, options: TemporalTlsOptions = {}): TemporalTlsFiles & { made: string[] } {
  const dnsNames = options.dnsNames ?? DEFAULT_DNS_NAMES;
  const ipAddresses = options.ipAddresses ?? DEFAULT_IP_ADDRESSES;
  const dueBy = Date.now() + (options.renewBeforeDays ?? RENEW_BEFORE_DAYS) * DAY_MS;
  const files = temporalTlsFiles(dir, dnsNames[0]);
  const openssl = requireOpenssl();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const config = path.join(dir, `openssl.${randomBytes(6).toString('hex')}.cnf`);
  writePrivateFile(config, opensslConfig(dnsNames, ipAddresses));
  const made: string[] = [];
  try {
    let ca = usable(files.ca, files.caKey, dueBy);
    if (!ca) {
      makeCa(openssl, config, files);
      ca = new X509Certificate(fs.readFileSync(files.ca));
      made.push('ca');
    }
    const leaves: [string, CertPair, Profile][] = [
      ['frontend', files.frontend, 'server'],
      ['internode', files.internode, 'internode'],
      ...TLS_CLIENTS.map((name): [string, CertPair, Profile] => [name, files.clients[name], 'client']),
    ];
    const wantedNames = [...dnsNames.map((name) => `DNS:${name}`), ...ipAddresses.map((ip) => `IP Address:${ip}`)].sort();
    for (const [name, pair, profile] of leaves) {
      const cert = made.includes('ca') ? undefined : usable(pair.cert, pair.key, dueBy);
      const fits =
        cert &&
        cert.verify(ca.publicKey) &&
        (profile === 'client' || sameList(cert.subjectAltName?.split(', ') ?? [], wantedNames));
      if (fits) continue;
      issue(openssl, config, files, pair, `checkout-fulfillment ${name}`, profile);
      made.push(name);
    }
  } finally {
    fs.rmSync(config, { force: true });
  }
  return { ...files, made };
}

/**
 * Copies each holder's files (its certificate and key, and the CA's certificate) into a directory
 * of its own under `root`, for holders that each see only theirs (compose's volumes): `server`
 * (the frontend and internode pairs), `ui`, `app`, `operator`. The CA's key is never copied.
 * `owner` (uid and gid) is the user the holders run as, when the copier is root.
 */
export function distributeTemporalTls(files: TemporalTlsFiles, root: string, owner?: { uid: number; gid: number }): Record<string, string> {
  const holders: Record<string, CertPair[]> = {
    server: [files.frontend, files.internode],
    ui: [files.clients.ui],
    app: [files.clients.app],
    operator: [files.clients.operator],
  };
  const dirs: Record<string, string> = {};
  for (const [holder, pairs] of Object.entries(holders)) {
    const dir = path.join(root, holder);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    for (const source of [files.ca, ...pairs.flatMap((pair) => [pair.cert, pair.key])]) {
      const target = path.join(dir, path.basename(source));
      writePrivateFile(target, fs.readFileSync(source));
      if (owner) fs.chownSync(target, owner.uid, owner.gid);
    }
    if (owner) fs.chownSync(dir, owner.uid, owner.gid);
    dirs[holder] = dir;
  }
  return dirs;
}

/** The TEMPORAL_TLS_* variables the SDK's envconfig reads (`src/temporal/connection.ts`): the CA to trust the frontend by, and `holder`'s certificate. */
export function clientTlsEnv(files: TemporalTlsFiles, holder: TlsClient): Record<string, string> {
  return {
    TEMPORAL_TLS: 'true',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: files.ca,
    TEMPORAL_TLS_CLIENT_CERT_PATH: files.clients[holder].cert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: files.clients[holder].key,
    TEMPORAL_TLS_SERVER_NAME: files.serverName,
  };
}

/** `holder`'s TLS options for `Connection.connect` and `NativeConnection.connect`. */
export function clientTlsConfig(files: TemporalTlsFiles, holder: TlsClient): TLSConfig {
  return {
    serverNameOverride: files.serverName,
    serverRootCACertificate: fs.readFileSync(files.ca),
    clientCertPair: { crt: fs.readFileSync(files.clients[holder].cert), key: fs.readFileSync(files.clients[holder].key) },
  };
}

/**
 * A Temporal client configuration file (TOML, the CLI's and the SDKs' envconfig) whose default
 * profile reaches the frontend at `address` with the operator's certificate: `temporal
 * --config-file <file> ...`, or TEMPORAL_CONFIG_FILE=<file> for the CLI and `npm run redrive`.
 */
export function operatorProfile(files: TemporalTlsFiles, address: string, namespace: string): string {
  const quote = (value: string) => JSON.stringify(value); // TOML basic strings escape as JSON does
  return `# Written by npm run cluster at every start: the operator's way into the cluster's Temporal.
[profile.default]
address = ${quote(address)}
namespace = ${quote(namespace)}

[profile.default.tls]
server_ca_cert_path = ${quote(files.ca)}
client_cert_path = ${quote(files.clients.operator.cert)}
client_key_path = ${quote(files.clients.operator.key)}
server_name = ${quote(files.serverName)}
`;
}

/** The openssl binary, or a StartupError saying how to get it. */
export function requireOpenssl(): string {
  for (const candidate of ['/usr/bin/openssl', '/usr/local/bin/openssl']) if (fs.existsSync(candidate)) return candidate;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return 'openssl';
  } catch {
    throw new StartupError(
      'openssl is not installed: it makes the Temporal frontend\'s certificates. Run `npm run provision` (as root it installs the Debian package `openssl`) or install it',
    );
  }
}

/** The certificate at `certFile` if it, and its key at `keyFile`, are there, belong together, and do not end before `dueBy`. */
function usable(certFile: string, keyFile: string, dueBy: number): X509Certificate | undefined {
  if (!fs.existsSync(certFile) || !fs.existsSync(keyFile)) return undefined;
  fs.chmodSync(certFile, 0o600);
  fs.chmodSync(keyFile, 0o600);
  try {
    const cert = new X509Certificate(fs.readFileSync(certFile));
    if (Date.parse(cert.validTo) < dueBy) return undefined;
    if (!cert.checkPrivateKey(createPrivateKey(fs.readFileSync(keyFile)))) return undefined;
    return cert;
  } catch {
    return undefined; // unreadable: made again
  }
}

function newKey(file: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writePrivateFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }));
}

function makeCa(openssl: string, config: string, files: TemporalTlsFiles): void {
  newKey(files.caKey);
  const cert = execFileSync(
    openssl,
    ['req', '-x509', '-new', '-config', config, '-extensions', 'ca', '-key', files.caKey, '-sha256', '-days', String(CA_DAYS), '-subj', '/CN=checkout-fulfillment Temporal CA'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  writePrivateFile(files.ca, cert);
}

function issue(openssl: string, config: string, files: TemporalTlsFiles, pair: CertPair, commonName: string, profile: Profile): void {
  newKey(pair.key);
  const request = execFileSync(openssl, ['req', '-new', '-config', config, '-key', pair.key, '-subj', `/CN=${commonName}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A random positive serial: no two certificates of this CA share one.
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const cert = execFileSync(
    openssl,
    ['x509', '-req', '-CA', files.ca, '-CAkey', files.caKey, '-set_serial', `0x${serial.toString('hex')}`, '-sha256', '-days', String(CERT_DAYS), '-extfile', config, '-extensions', profile],
    { input: request, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] },
  );
  writePrivateFile(pair.cert, cert);
}

/** Our own configuration, so the host's openssl.cnf adds nothing: the CA, the two server profiles and the client profile. */
function opensslConfig(dnsNames: string[], ipAddresses: string[]): string {
  const altNames = [...dnsNames.map((name) => `DNS:${name}`), ...ipAddresses.map((ip) => `IP:${ip}`)].join(', ');
  return `[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${altNames}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[internode]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = ${altNames}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;
}

function sameList(a: string[], sortedB: string[]): boolean {
  const sortedA = [...a].sort();
  return sortedA.length === sortedB.length && sortedA.every((value, i) => value === sortedB[i]);
}
