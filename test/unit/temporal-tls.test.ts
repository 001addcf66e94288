/**
 * The cluster's Temporal certificates (issue 20, item 1): made once at the first start, kept at
 * 0600 and reused, made again when due; and, through a real TLS server holding the frontend's
 * certificate and requiring a client's, what the SDK's two connections (the client's grpc-js
 * Connection, the worker's native one) do with them.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection, type TLSConfig } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import {
  CA_DAYS,
  CERT_DAYS,
  clientTlsConfig,
  clientTlsEnv,
  distributeTemporalTls,
  keptTemporalTls,
  operatorProfile,
  type TemporalTlsFiles,
} from '../../src/cluster/temporal-tls';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'temporal-tls-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const ALL = ['ca', 'frontend', 'internode', 'app', 'ui', 'operator'];
const modeOf = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);
const cert = (file: string) => new X509Certificate(fs.readFileSync(file));
const contents = (root: string) => Object.fromEntries(fs.readdirSync(root).map((name) => [name, fs.readFileSync(path.join(root, name), 'utf8')]));
const days = (c: X509Certificate) => Math.round((Date.parse(c.validTo) - Date.parse(c.validFrom)) / 86_400_000);

describe('keptTemporalTls', () => {
  test('when the cluster first starts, then a CA and every certificate are made, keys and all 0600 in a 0700 directory', () => {
    const tls = keptTemporalTls(path.join(dir, 'tls'));

    expect(tls.made).toEqual(ALL);
    expect(modeOf(tls.dir)).toBe('700');
    const files = fs.readdirSync(tls.dir).sort();
    expect(files).toEqual(ALL.flatMap((name) => [`${name}-key.pem`, `${name}.pem`]).sort());
    for (const name of files) expect(modeOf(path.join(tls.dir, name))).toBe('600');
  });

  test('when it starts again, then every file is reused as it was, and a kept key left at 0644 is made 0600 again', () => {
    const first = keptTemporalTls(dir);
    const before = contents(dir);
    fs.chmodSync(first.clients.operator.key, 0o644);
    fs.chmodSync(first.caKey, 0o644);

    const second = keptTemporalTls(dir);

    expect(second.made).toEqual([]);
    expect(contents(dir)).toEqual(before);
    expect(modeOf(second.clients.operator.key)).toBe('600');
    expect(modeOf(second.caKey)).toBe('600');
  });

  test('when the certificates are read, then they are ECDSA P-256, the server ones name the loopback address, localhost and compose’s `temporal`, and all are signed by the CA', () => {
    const tls = keptTemporalTls(dir);
    const ca = cert(tls.ca);
    expect(ca.ca).toBe(true);
    expect(days(ca)).toBe(CA_DAYS);
    for (const file of [tls.frontend.cert, tls.internode.cert, tls.clients.app.cert, tls.clients.ui.cert, tls.clients.operator.cert]) {
      const leaf = cert(file);
      expect(leaf.ca).toBe(false);
      expect(leaf.verify(ca.publicKey)).toBe(true);
      expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(days(leaf)).toBe(CERT_DAYS);
    }
    for (const file of [tls.frontend.cert, tls.internode.cert]) {
      expect(cert(file).checkHost('localhost')).toBe('localhost');
      expect(cert(file).checkHost('temporal')).toBe('temporal');
      expect(cert(file).checkIP('127.0.0.1')).toBe('127.0.0.1');
    }
    expect(cert(tls.clients.app.cert).checkHost('localhost')).toBeUndefined(); // a client's certificate serves no host
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(tls.serverName).toBe('localhost');
  });

  test('when certificates end within the renewal window, then they are made again from the same CA; when the CA does, everything is', () => {
    const first = keptTemporalTls(dir);
    const ca = fs.readFileSync(first.ca, 'utf8');
    const app = fs.readFileSync(first.clients.app.cert, 'utf8');

    const renewed = keptTemporalTls(dir, { renewBeforeDays: CERT_DAYS + 10 });
    expect(renewed.made).toEqual(ALL.filter((name) => name !== 'ca'));
    expect(fs.readFileSync(first.ca, 'utf8')).toBe(ca);
    expect(fs.readFileSync(first.clients.app.cert, 'utf8')).not.toBe(app);
    expect(cert(first.clients.app.cert).verify(cert(first.ca).publicKey)).toBe(true);

    expect(keptTemporalTls(dir, { renewBeforeDays: CA_DAYS + 10 }).made).toEqual(ALL);
    expect(fs.readFileSync(first.ca, 'utf8')).not.toBe(ca);
  });

  test('when a certificate lost its key, was signed by another CA, or names other hosts, then only that one is made again', () => {
    const tls = keptTemporalTls(dir);
    const other = keptTemporalTls(path.join(dir, 'other'));
    fs.copyFileSync(other.clients.ui.key, tls.clients.app.key); // the app's certificate and a key that is not its own
    fs.copyFileSync(other.clients.ui.cert, tls.clients.ui.cert); // with its own key, but of another CA
    fs.copyFileSync(other.clients.ui.key, tls.clients.ui.key);

    expect(keptTemporalTls(dir).made).toEqual(['app', 'ui']);
    expect(keptTemporalTls(dir, { dnsNames: ['localhost', 'temporal', 'temporal.internal'] }).made).toEqual(['frontend', 'internode']);
    expect(cert(tls.frontend.cert).checkHost('temporal.internal')).toBe('temporal.internal');
  });
});

describe('distributeTemporalTls (compose: one volume per holder)', () => {
  test('when the files are handed out, then each holder gets the CA’s certificate and its own pair only, 0600, and nobody the CA’s key', () => {
    const tls = keptTemporalTls(path.join(dir, 'ca'));
    const dirs = distributeTemporalTls(tls, path.join(dir, 'out'));

    const listing = Object.fromEntries(Object.entries(dirs).map(([holder, holderDir]) => [holder, fs.readdirSync(holderDir).sort()]));
    expect(listing).toEqual({
      server: ['ca.pem', 'frontend-key.pem', 'frontend.pem', 'internode-key.pem', 'internode.pem'],
      ui: ['ca.pem', 'ui-key.pem', 'ui.pem'],
      app: ['app-key.pem', 'app.pem', 'ca.pem'],
      operator: ['ca.pem', 'operator-key.pem', 'operator.pem'],
    });
    for (const holderDir of Object.values(dirs)) {
      expect(modeOf(holderDir)).toBe('700');
      for (const name of fs.readdirSync(holderDir)) expect(modeOf(path.join(holderDir, name))).toBe('600');
      expect(fs.readFileSync(path.join(holderDir, 'ca.pem'), 'utf8')).toBe(fs.readFileSync(tls.ca, 'utf8'));
    }
    expect(fs.readFileSync(path.join(dirs.app!, 'app-key.pem'), 'utf8')).toBe(fs.readFileSync(tls.clients.app.key, 'utf8'));
  });
});

describe('the operator’s CLI profile and the processes’ TEMPORAL_TLS_* variables', () => {
  test('when the SDK’s envconfig reads them, as the CLI and every process of the product do, then they name the CA, the holder’s pair and the server name', () => {
    const tls = keptTemporalTls(dir);
    const file = path.join(dir, 'temporal-cli.toml');
    fs.writeFileSync(file, operatorProfile(tls, '127.0.0.1:7400', 'default'));

    const fromProfile = loadClientConnectConfig({ configSource: { path: file }, disableEnv: true });
    expect(fromProfile.namespace).toBe('default');
    expect(fromProfile.connectionOptions.address).toBe('127.0.0.1:7400');
    expect(fromProfile.connectionOptions.tls).toEqual(clientTlsConfig(tls, 'operator'));

    const fromEnv = loadClientConnectConfig({ disableFile: true, overrideEnvVars: { ...clientTlsEnv(tls, 'app'), TEMPORAL_ADDRESS: 'temporal:7233' } });
    expect(fromEnv.connectionOptions.tls).toEqual(clientTlsConfig(tls, 'app'));
  });
});

describe('a TLS server with the frontend’s certificate, requiring a client certificate of the CA', () => {
  let tls: TemporalTlsFiles;
  let server: http2.Http2SecureServer;
  let address: string;
  const handshakes: string[] = [];

  beforeEach(async () => {
    tls = keptTemporalTls(path.join(dir, 'tls'));
    // What the Temporal server's frontend is given (src/cluster/temporal-server.ts): its pair, and the CA for clients.
    server = http2.createSecureServer({
      cert: fs.readFileSync(tls.frontend.cert),
      key: fs.readFileSync(tls.frontend.key),
      ca: fs.readFileSync(tls.ca),
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on('secureConnection', (socket) => handshakes.push(socket.getPeerCertificate().subject?.CN ?? '?'));
    // Every call answered as GetSystemInfo would be: an empty message, status OK.
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.alloc(5));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    handshakes.length = 0;
  });
  afterEach(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const viaClient = async (tlsConfig: TLSConfig | undefined) => (await Connection.connect({ address, tls: tlsConfig, connectTimeout: '2 seconds' })).close();
  const viaWorker = async (tlsConfig: TLSConfig | undefined) => (await NativeConnection.connect({ address, tls: tlsConfig })).close();

  test.each([
    ['the client’s Connection (ingress)', viaClient],
    ['the worker’s NativeConnection', viaWorker],
  ])('when %s shows a certificate of the CA, then it connects, checking the server’s', async (_name, connect) => {
    await connect(clientTlsConfig(tls, 'app'));
    await connect(clientTlsConfig(tls, 'operator'));
    expect(handshakes).toEqual(expect.arrayContaining(['checkout-fulfillment app', 'checkout-fulfillment operator']));
  });

  test.each([
    ['the client’s Connection (ingress)', viaClient],
    ['the worker’s NativeConnection', viaWorker],
  ])('when %s shows no certificate, one of another CA, or speaks plaintext, then the server refuses it', async (_name, connect) => {
    const other = keptTemporalTls(path.join(dir, 'other'));
    const own = clientTlsConfig(tls, 'app');
    await expect(connect({ ...own, clientCertPair: undefined })).rejects.toThrow();
    await expect(connect({ ...own, clientCertPair: clientTlsConfig(other, 'app').clientCertPair })).rejects.toThrow();
    await expect(connect(undefined)).rejects.toThrow();
    // Nor does a client with its own certificate trust a server that another CA signed.
    await expect(connect({ ...own, serverRootCACertificate: fs.readFileSync(other.ca) })).rejects.toThrow();
    expect(handshakes).toEqual([]);
  });
});
