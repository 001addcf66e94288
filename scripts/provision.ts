/**
 * Installs the Temporal dev server (Temporal CLI), Temporal's Java time-skipping test server
 * and stripe-mock from package registries (Go module proxy, Maven Central) into a cache
 * outside the work tree, then records their paths in a manifest. Idempotent: a second run
 * only checks the cache. Run by `npm start` and `npm test` before anything else.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  STRIPE_MOCK_VERSION,
  TEMPORAL_SERVER_VERSION,
  TEMPORAL_UI_SERVER_VERSION,
  type ClusterTools,
  TEMPORAL_CLI_VERSION,
  TEMPORAL_TEST_SERVER_VERSION,
  executableFromEnv,
  manifestPath,
  toolsCacheDir,
  type ServerExecutable,
  type ToolManifest,
} from '../src/temporal/tools';
import { findPostgresBinDir } from '../src/store/postgres-binaries';
import { HAPROXY } from '../src/cluster/haproxy';

const cache = toolsCacheDir();
const provisionDir = path.join(__dirname, 'provision');
const INSTALL_TIMEOUT_MS = 30 * 60_000;

class MissingToolchain extends Error {}

function log(message: string): void {
  console.log(`[provision] ${message}`);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(cmd, args, {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: INSTALL_TIMEOUT_MS,
  });
}

function tryRun(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch {
    return undefined;
  }
}

function timed<T>(what: string, fn: () => T): T {
  const started = Date.now();
  const result = fn();
  log(`${what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

/** Go >= 1.25, the minimum the Temporal CLI v1.5.1 module declares. */
function goAvailable(): boolean {
  const version = tryRun('go', ['env', 'GOVERSION'])?.trim();
  const match = version?.match(/^go(\d+)\.(\d+)/);
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 1 || (major === 1 && minor >= 25);
}

function javaAndMavenAvailable(): boolean {
  return tryRun('javac', ['-version']) !== undefined && tryRun('mvn', ['-v']) !== undefined;
}

/** The SDK can download its own servers when the machine has internet (a user's laptop). */
async function internetReachable(): Promise<boolean> {
  try {
    await fetch('https://temporal.download', { method: 'HEAD', signal: AbortSignal.timeout(3000) });
    return true;
  } catch {
    return false;
  }
}

function overridden(name: string): ServerExecutable | undefined {
  let executable: ServerExecutable | undefined;
  try {
    executable = executableFromEnv(name);
  } catch (err) {
    throw new MissingToolchain((err as Error).message);
  }
  if (executable) log(`${name} set: using ${process.env[name]}`);
  return executable;
}

/** `go install module@vVERSION` into `<cache>/<name>-vVERSION/` (its own directory: two tools' binaries are both named `server`). */
function goInstall(module: string, version: string, binary: string, name = binary): string {
  const dir = path.join(cache, `${name}-v${version}`);
  const target = path.join(dir, binary);
  if (fs.existsSync(target)) {
    log(`${binary} v${version}: cached at ${target}`);
    return target;
  }
  log(`${binary} v${version}: building with \`go install ${module}@v${version}\` (first build takes minutes)`);
  // GOTOOLCHAIN=local: never try to download another Go toolchain (that would fail offline).
  timed(`${binary} v${version}: built`, () =>
    run('go', ['install', `${module}@v${version}`], { GOBIN: dir, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' }),
  );
  return target;
}

async function provisionTemporalCli(): Promise<ServerExecutable> {
  const override = overridden('TEMPORAL_CLI_PATH');
  if (override) return override;
  if (goAvailable()) {
    // v1.5.1 is the last tag `go install` accepts: later go.mod files carry a local `replace`.
    return { type: 'existing-path', path: goInstall('github.com/temporalio/cli/cmd/temporal', TEMPORAL_CLI_VERSION, 'temporal') };
  }
  if (await internetReachable()) {
    log('temporal CLI: no Go >= 1.25; the Temporal SDK will download the dev server when first needed');
    return { type: 'cached-download' };
  }
  throw new MissingToolchain(
    'temporal CLI: no Go >= 1.25 to build it and no internet for the SDK download; install Go >= 1.25 or set TEMPORAL_CLI_PATH to a `temporal` binary',
  );
}

async function provisionTestServer(): Promise<ServerExecutable> {
  const override = overridden('TEMPORAL_TEST_SERVER_PATH');
  if (override) return override;
  const dir = path.join(cache, `temporal-test-server-${TEMPORAL_TEST_SERVER_VERSION}`);
  const wrapper = path.join(dir, 'temporal-test-server');
  if (fs.existsSync(wrapper)) {
    log(`temporal-test-server ${TEMPORAL_TEST_SERVER_VERSION}: cached at ${wrapper}`);
    return { type: 'existing-path', path: wrapper };
  }
  if (!javaAndMavenAvailable()) {
    if (await internetReachable()) {
      log('temporal-test-server: no JDK and Maven; the Temporal SDK will download the test server when first needed');
      return { type: 'cached-download' };
    }
    throw new MissingToolchain(
      'temporal-test-server: no JDK (javac) and Maven to fetch it and no internet for the SDK download; install a JDK >= 11 and Maven, or set TEMPORAL_TEST_SERVER_PATH',
    );
  }
  log(`temporal-test-server ${TEMPORAL_TEST_SERVER_VERSION}: resolving io.temporal:temporal-test-server from Maven Central`);
  const staging = `${dir}.partial`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(path.join(staging, 'classes'), { recursive: true });
  const classpathFile = path.join(staging, 'classpath.txt');
  timed('temporal-test-server: classpath resolved', () =>
    run('mvn', [
      '-B',
      '-q',
      '-f',
      path.join(provisionDir, 'temporal-test-server.pom.xml'),
      'dependency:build-classpath',
      `-Dmdep.outputFile=${classpathFile}`,
    ]),
  );
  const classpath = fs.readFileSync(classpathFile, 'utf8').trim();
  run('javac', ['-cp', classpath, '-d', path.join(staging, 'classes'), path.join(provisionDir, 'LoopbackTestServer.java')]);
  // `exec`, so the SDK's SIGKILL reaches the JVM itself and leaves no orphan.
  const script = [
    '#!/bin/sh',
    `# Temporal time-skipping test server ${TEMPORAL_TEST_SERVER_VERSION} (Java), bound to 127.0.0.1. Usage: $0 <port>`,
    `exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -cp "${path.join(dir, 'classes')}:${classpath}" LoopbackTestServer "$@"`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(staging, 'temporal-test-server'), script, { mode: 0o755 });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(staging, dir);
  log(`temporal-test-server ${TEMPORAL_TEST_SERVER_VERSION}: installed at ${wrapper}`);
  return { type: 'existing-path', path: wrapper };
}

function provisionStripeMock(): string | undefined {
  if (process.env.STRIPE_MOCK_PATH) {
    log(`STRIPE_MOCK_PATH set: using ${process.env.STRIPE_MOCK_PATH}`);
    return process.env.STRIPE_MOCK_PATH;
  }
  if (!goAvailable()) {
    log('stripe-mock: skipped (no Go >= 1.25); the tests and the offline demo need it: install Go or set STRIPE_MOCK_PATH');
    return undefined;
  }
  return goInstall('github.com/stripe/stripe-mock', STRIPE_MOCK_VERSION, 'stripe-mock');
}

/**
 * The production topology's Temporal parts, built from the Go module proxy: the server (PostgreSQL
 * persistence, SQL visibility), temporal-sql-tool and the Web UI server (assets embedded). The
 * schemas ship inside the server's module; they are copied beside the tools so the cache does not
 * depend on Go's module cache staying put.
 */
function provisionClusterTools(): ClusterTools | undefined {
  if (!goAvailable()) {
    log('cluster tools: skipped (no Go >= 1.25); `npm run cluster` and its tests need them');
    return undefined;
  }
  const temporalServer = goInstall('go.temporal.io/server/cmd/server', TEMPORAL_SERVER_VERSION, 'server', 'temporal-server');
  const temporalSqlTool = goInstall('go.temporal.io/server/cmd/tools/sql', TEMPORAL_SERVER_VERSION, 'sql', 'temporal-sql-tool');
  const uiServer = goInstall('github.com/temporalio/ui-server/v2/cmd/server', TEMPORAL_UI_SERVER_VERSION, 'server', 'temporal-ui-server');
  const postgresSchemaDir = path.join(path.dirname(temporalServer), 'schema', 'postgresql', 'v12');
  if (!fs.existsSync(postgresSchemaDir)) {
    const modCache = run('go', ['env', 'GOMODCACHE']).trim();
    const shipped = path.join(modCache, 'go.temporal.io', `server@v${TEMPORAL_SERVER_VERSION}`, 'schema', 'postgresql', 'v12');
    fs.cpSync(shipped, postgresSchemaDir, { recursive: true });
    log(`temporal schemas: copied to ${postgresSchemaDir}`);
  }
  return { temporalServer, temporalSqlTool, postgresSchemaDir, uiServer };
}

/**
 * tools/compose-config: Compose's own loader (compose-go), which `npm test` runs to check
 * docker-compose.yml's policy without a Docker engine. Built from the work tree's module and
 * cached under a hash of its sources, so an edit rebuilds it and nothing else does.
 */
function provisionComposeConfig(): string | undefined {
  if (!goAvailable()) {
    log('compose-config: skipped (no Go >= 1.25); test/unit/compose-policy.test.ts needs it');
    return undefined;
  }
  const source = path.resolve(__dirname, '../tools/compose-config');
  const hash = crypto.createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go']) hash.update(fs.readFileSync(path.join(source, file)));
  const target = path.join(cache, `compose-config-${hash.digest('hex').slice(0, 12)}`, 'compose-config');
  if (fs.existsSync(target)) {
    log(`compose-config: cached at ${target}`);
    return target;
  }
  log('compose-config: building tools/compose-config (compose-go: seconds, once its modules are downloaded)');
  fs.mkdirSync(path.dirname(target), { recursive: true });
  timed('compose-config: built', () =>
    execFileSync('go', ['build', '-buildvcs=false', '-o', target, '.'], {
      cwd: source,
      env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: INSTALL_TIMEOUT_MS,
    }),
  );
  return target;
}

/** A Debian package the tests and the cluster need, installed with apt-get when missing and we may. */
function provisionDebianPackage(pkg: string, present: () => boolean, purpose: string): void {
  if (present()) return;
  if (process.getuid?.() !== 0 || tryRun('apt-get', ['--version']) === undefined) {
    log(`${pkg}: not installed, and apt-get is not usable here; install the Debian package \`${pkg}\` for ${purpose}`);
    return;
  }
  log(`${pkg}: installing the Debian package \`${pkg}\``);
  timed(`${pkg}: installed`, () => {
    run('apt-get', ['update', '-q'], { DEBIAN_FRONTEND: 'noninteractive' });
    run('apt-get', ['install', '-y', '-q', '--no-install-recommends', pkg], { DEBIAN_FRONTEND: 'noninteractive' });
  });
}

/** A PostgreSQL server for the store's tests and the cluster (the product itself defaults to PGlite). */
function provisionPostgres(): void {
  const existing = findPostgresBinDir();
  if (existing) log(`postgresql: server binaries at ${existing}`);
  provisionDebianPackage('postgresql', () => findPostgresBinDir() !== undefined, 'the PostgreSQL tests and `npm run cluster`');
}

/** HAProxy, the reverse proxy in front of the cluster's ingress processes. */
function provisionHaproxy(): void {
  const version = tryRun(HAPROXY, ['-v'])?.split('\n')[0];
  if (version) log(`haproxy: ${version}`);
  provisionDebianPackage('haproxy', () => tryRun(HAPROXY, ['-v']) !== undefined, '`npm run cluster`');
}

/** openssl, which makes the cluster's Temporal certificates (src/cluster/temporal-tls.ts). */
function provisionOpenssl(): void {
  const version = tryRun('openssl', ['version'])?.split('\n')[0];
  if (version) log(`openssl: ${version}`);
  provisionDebianPackage('openssl', () => tryRun('openssl', ['version']) !== undefined, "`npm run cluster` (the Temporal frontend's certificates)");
}

async function main(): Promise<void> {
  const started = Date.now();
  fs.mkdirSync(cache, { recursive: true });
  log(`cache: ${cache}`);
  const manifest: ToolManifest = {
    temporalCli: await provisionTemporalCli(),
    testServer: await provisionTestServer(),
    stripeMock: provisionStripeMock(),
    cluster: provisionClusterTools(),
    composeConfig: provisionComposeConfig(),
  };
  fs.writeFileSync(manifestPath(), JSON.stringify(manifest, null, 2) + '\n');
  provisionPostgres();
  provisionHaproxy();
  provisionOpenssl();
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s; manifest ${manifestPath()}`);
}

main().catch((err: unknown) => {
  if (err instanceof MissingToolchain) {
    console.error(`[provision] cannot continue: ${err.message}`);
  } else {
    const e = err as { message?: string; stderr?: string };
    console.error(`[provision] failed: ${e.message ?? String(err)}${e.stderr ? `\n${e.stderr}` : ''}`);
  }
  process.exit(1);
});
