/**
 * The deployment files' policy (issue 20, item 7), checked without a Docker engine: docker-compose.yml
 * through Compose's own loader (tools/compose-config, compose-go, resolving it exactly as `docker
 * compose config` does: interpolation, required variables, profiles), the Dockerfile, .gitignore and
 * .dockerignore as text.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { requireComposeConfig } from '../../src/temporal/tools';

const REPO = path.resolve(__dirname, '../..');
const composeConfig = requireComposeConfig();

/** What a deployer provides, each value distinct so a test can tell which service got which. */
const DEPLOYER_ENV = {
  STRIPE_SECRET_KEY: 'sk_test_policy',
  STRIPE_WEBHOOK_SECRET: 'whsec_policy',
  PAYLOAD_ENCRYPTION_KEYS: 'k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  CODEC_AUTH_TOKEN: 'codec-token-policy',
  SMTP_URL: 'smtp://mailer:mail-password@smtp.shop.example:587',
  TEMPORAL_DB_PASSWORD: 'temporal-db-password-policy',
  CHECKOUT_DB_PASSWORD: 'checkout-db-password-policy',
  GRAFANA_ADMIN_PASSWORD: 'grafana-admin-password-policy',
};
const LOCAL = ['--profile', 'local'];
const LOCAL_ENV = { ...DEPLOYER_ENV, SMTP_URL: 'smtp://mailpit:1025' };

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  profiles?: string[];
  environment?: Record<string, string | null>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: { type: string; source: string; target: string; read_only?: boolean }[];
  command?: string[] | null;
  user?: string;
  healthcheck?: { test: string[] };
}
interface Project {
  services: Record<string, Service>;
}

/** `docker compose [--profile ...] config` with exactly `env`: no .env and none of this shell's variables. */
function loadCompose(env: Record<string, string>, args: string[] = []) {
  return spawnSync(composeConfig, ['-f', 'docker-compose.yml', ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', COMPOSE_DISABLE_ENV_FILE: '1', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

function project(env: Record<string, string>, args: string[] = []): Project {
  const result = loadCompose(env, args);
  if (result.status !== 0) throw new Error(`compose-config failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Project;
}

const envOf = (service: Service) => service.environment ?? {};
/** Services with an environment value containing `text`, sorted by name. */
const servicesWhoseEnvContains = (p: Project, text: string) =>
  Object.entries(p.services)
    .filter(([, service]) => Object.values(envOf(service)).some((value) => value?.includes(text)))
    .map(([name]) => name)
    .sort();
/** The services built from this repository: the app (ingress, worker, setup, codec). */
const appServices = (p: Project) => Object.entries(p.services).filter(([, service]) => service.build);

const production = project(DEPLOYER_ENV);
const local = project(LOCAL_ENV, LOCAL);

describe('docker-compose.yml, as Compose loads it', () => {
  test('when the stack runs, then the app logs in to PostgreSQL with a role and database of its own, never as the superuser', () => {
    const superuser = envOf(production.services.postgresql!).POSTGRES_USER;
    expect(superuser).toBe('temporal');
    const withDatabase = appServices(production).filter(([, service]) => envOf(service).DATABASE_URL);
    expect(withDatabase.map(([name]) => name).sort()).toEqual(['ingress', 'setup', 'worker']);
    for (const [, service] of withDatabase) {
      const url = new URL(envOf(service).DATABASE_URL!);
      expect(url.username).toBe('checkout');
      expect(url.username).not.toBe(superuser);
      expect(url.password).toBe(DEPLOYER_ENV.CHECKOUT_DB_PASSWORD);
      expect(url.pathname).toBe('/checkout');
    }
    // The superuser's password reaches Temporal's services and the role's bootstrap only.
    expect(servicesWhoseEnvContains(production, DEPLOYER_ENV.TEMPORAL_DB_PASSWORD)).toEqual([
      'checkout-database',
      'postgresql',
      'temporal',
      'temporal-schema',
    ]);
  });

  test('when the stack starts, then the app role is made by deploy/postgres/checkout-database.sh before any app service runs', () => {
    const bootstrap = production.services['checkout-database']!;
    expect(bootstrap.volumes?.map((volume) => [path.relative(REPO, volume.source), volume.target])).toEqual([
      ['deploy/postgres/checkout-database.sh', '/checkout-database.sh'],
    ]);
    expect(envOf(bootstrap)).toMatchObject({ PGUSER: 'temporal', CHECKOUT_DB_PASSWORD: DEPLOYER_ENV.CHECKOUT_DB_PASSWORD });
    expect(production.services.setup!.depends_on?.['checkout-database']?.condition).toBe('service_completed_successfully');
    for (const name of ['worker', 'ingress']) {
      expect(production.services[name]!.depends_on?.setup?.condition).toBe('service_completed_successfully');
    }
  });

  test.each([
    ['production', production],
    ['the local profile', local],
  ])('when Grafana runs (%s), then everyone signs in, with the admin password the deployer set', (_name, p) => {
    const grafana = envOf(p.services.grafana!);
    expect(grafana.GF_AUTH_ANONYMOUS_ENABLED).toBe('false');
    expect(grafana.GF_AUTH_ANONYMOUS_ORG_ROLE).toBeUndefined();
    expect(grafana.GF_SECURITY_ADMIN_PASSWORD).toBe(DEPLOYER_ENV.GRAFANA_ADMIN_PASSWORD);
  });

  test('when the stack runs without the local profile, then there is no Mailpit and mail goes to the SMTP_URL the deployer set', () => {
    expect(Object.keys(production.services)).not.toContain('mailpit');
    expect(servicesWhoseEnvContains(production, 'mailpit')).toEqual([]);
    expect(servicesWhoseEnvContains(production, DEPLOYER_ENV.SMTP_URL)).toEqual(['ingress', 'setup', 'worker']);
  });

  test('when the local profile is on, then Mailpit runs and the workers send it every email', () => {
    expect(local.services.mailpit?.profiles).toEqual(['local']);
    expect(envOf(local.services.worker!).SMTP_URL).toBe('smtp://mailpit:1025');
    // The same through COMPOSE_PROFILES, as docker compose reads it.
    expect(Object.keys(project({ ...LOCAL_ENV, COMPOSE_PROFILES: 'local' }).services)).toContain('mailpit');
  });

  test('when SMTP_URL is unset, then Compose refuses to load and says to set it, or to use the local profile', () => {
    const { SMTP_URL: _unset, ...withoutSmtp } = DEPLOYER_ENV;
    for (const args of [[], LOCAL]) {
      const result = loadCompose(withoutSmtp, args);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('required variable SMTP_URL is missing a value: set SMTP_URL to your mail server');
      expect(result.stderr).toContain('SMTP_URL=smtp://mailpit:1025 with --profile local');
    }
  });

  test.each(['TEMPORAL_DB_PASSWORD', 'CHECKOUT_DB_PASSWORD', 'GRAFANA_ADMIN_PASSWORD'] as const)(
    'when %s is unset, then Compose refuses to load and says to set it, with no default password even in the local profile',
    (name) => {
      for (const [env, args] of [
        [DEPLOYER_ENV, []],
        [LOCAL_ENV, LOCAL],
      ] as const) {
        const { [name]: _unset, ...rest } = env;
        const result = loadCompose(rest, [...args]);
        expect(result.status).toBe(1);
        expect(result.stderr).toContain(`required variable ${name} is missing a value: set ${name}`);
      }
    },
  );
});

describe('Temporal behind mutual TLS (issue 20, item 1), as Compose loads it', () => {
  const services = production.services;
  /** Every service that talks to the frontend: by its address in an environment value, its command or its health check. */
  const clientsOfTemporal = Object.entries(services)
    .filter(([, service]) =>
      [...Object.values(envOf(service)), ...(service.command ?? []), ...(service.healthcheck?.test ?? [])].some((value) => value?.includes('temporal:7233')),
    )
    .map(([name]) => name)
    .sort();
  /** Which services mount each volume whose name starts with temporal-tls. */
  const mountsOf = (volume: string) =>
    Object.entries(services)
      .filter(([, service]) => service.volumes?.some((mount) => mount.type === 'volume' && mount.source === volume))
      .map(([name]) => name)
      .sort();

  test('when Temporal starts, then its frontend and its services among themselves require a client certificate of the stack’s CA', () => {
    const env = envOf(services.temporal!);
    expect(env).toMatchObject({
      TEMPORAL_TLS_REQUIRE_CLIENT_AUTH: 'true',
      TEMPORAL_TLS_FRONTEND_CERT: '/etc/temporal/tls/frontend.pem',
      TEMPORAL_TLS_FRONTEND_KEY: '/etc/temporal/tls/frontend-key.pem',
      TEMPORAL_TLS_CLIENT1_CA_CERT: '/etc/temporal/tls/ca.pem',
      TEMPORAL_TLS_SERVER_CERT: '/etc/temporal/tls/internode.pem',
      TEMPORAL_TLS_SERVER_KEY: '/etc/temporal/tls/internode-key.pem',
      TEMPORAL_TLS_SERVER_CA_CERT: '/etc/temporal/tls/ca.pem',
      TEMPORAL_TLS_FRONTEND_SERVER_NAME: 'temporal',
    });
    // The server image's template lists a second client CA whenever the first is set: the same one, never an empty entry.
    expect(env.TEMPORAL_TLS_CLIENT2_CA_CERT).toBe('/etc/temporal/tls/ca.pem');
    expect(services.temporal!.volumes).toEqual([expect.objectContaining({ source: 'temporal-tls-server', target: '/etc/temporal/tls', read_only: true })]);
    expect(services.temporal!.depends_on?.['temporal-tls']?.condition).toBe('service_completed_successfully');
  });

  test('when anything talks to the frontend, then it shows a certificate of its own, from a read-only volume of its own', () => {
    expect(clientsOfTemporal).toEqual(['ingress', 'setup', 'temporal', 'temporal-namespace', 'temporal-ui', 'worker']);
    const holders: Record<string, string> = {};
    for (const name of clientsOfTemporal) {
      const service = services[name]!;
      const env = envOf(service);
      const flags = [...(service.command ?? []), ...(service.healthcheck?.test ?? [])].join(' ');
      // The SDK's envconfig (the app), the UI server's and the CLI's own variables, or the CLI's flags.
      const cert =
        env.TEMPORAL_TLS_CLIENT_CERT_PATH ?? (name === 'temporal' ? flags.match(/--tls-cert-path[ =](\S+)/)?.[1] : env.TEMPORAL_TLS_CERT);
      const key = env.TEMPORAL_TLS_CLIENT_KEY_PATH ?? (name === 'temporal' ? flags.match(/--tls-key-path[ =](\S+)/)?.[1] : env.TEMPORAL_TLS_KEY);
      const ca = env.TEMPORAL_TLS_SERVER_CA_CERT_PATH ?? (name === 'temporal' ? flags.match(/--tls-ca-path[ =](\S+)/)?.[1] : env.TEMPORAL_TLS_CA);
      expect([name, cert, key, ca].every(Boolean)).toBe(true);
      const mount = service.volumes?.find((volume) => cert!.startsWith(`${volume.target}/`));
      expect(mount).toMatchObject({ type: 'volume', read_only: true, source: expect.stringMatching(/^temporal-tls-(server|ui|app|operator)$/) });
      expect(path.dirname(key!)).toBe(mount!.target);
      expect(ca).toBe(`${mount!.target}/ca.pem`);
      holders[name] = mount!.source;
    }
    expect(holders).toEqual({
      ingress: 'temporal-tls-app',
      setup: 'temporal-tls-app',
      worker: 'temporal-tls-app',
      'temporal-ui': 'temporal-tls-ui',
      'temporal-namespace': 'temporal-tls-operator',
      temporal: 'temporal-tls-server', // its health check, with the internode certificate
    });
    // The namespace's registration passes the operator's certificate on every call.
    expect(services['temporal-namespace']!.command!.join(' ')).toContain('--tls-cert-path /tls/operator.pem --tls-key-path /tls/operator-key.pem');
    // The UI server checks the frontend's certificate and name: without host verification it would not check it at all.
    expect(envOf(services['temporal-ui']!)).toMatchObject({ TEMPORAL_TLS_ENABLE_HOST_VERIFICATION: 'true', TEMPORAL_TLS_SERVER_NAME: 'temporal' });
  });

  test('when the certificates are made, then the one-shot temporal-tls keeps the CA in a volume nobody else mounts and hands each holder only its own', () => {
    const maker = services['temporal-tls']!;
    expect(maker.build).toMatchObject({ context: REPO, dockerfile: 'Dockerfile' });
    expect(maker.command).toEqual(['node', 'dist/scripts/temporal-tls.js']);
    expect(envOf(maker)).toMatchObject({ TLS_CA_DIR: '/tls/ca', TLS_OUT_DIR: '/tls', TLS_OWNER: '1000:1000' });
    expect(envOf(maker).TLS_SERVER_NAMES?.split(',')[0]).toBe('temporal');
    expect(mountsOf('temporal-tls-ca')).toEqual(['temporal-tls']);
    expect(mountsOf('temporal-tls-server')).toEqual(['temporal', 'temporal-tls']);
    expect(mountsOf('temporal-tls-ui')).toEqual(['temporal-tls', 'temporal-ui']);
    expect(mountsOf('temporal-tls-app')).toEqual(['ingress', 'setup', 'temporal-tls', 'worker']);
    expect(mountsOf('temporal-tls-operator')).toEqual(['temporal-namespace', 'temporal-tls']);
    // Every holder directory is mounted where the script writes it: TLS_OUT_DIR/<holder>.
    for (const holder of ['server', 'ui', 'app', 'operator']) {
      expect(maker.volumes).toContainEqual(expect.objectContaining({ source: `temporal-tls-${holder}`, target: `/tls/${holder}` }));
    }
    expect(fs.readFileSync(path.join(REPO, 'tsconfig.build.json'), 'utf8')).toContain('scripts/temporal-tls.ts');
  });

  test.each([
    ['production', production],
    ['the local profile', local],
  ])('when the UI runs (%s), then its write actions are off', (_name, p) => {
    expect(envOf(p.services['temporal-ui']!).TEMPORAL_DISABLE_WRITE_ACTIONS).toBe('true');
  });

  test('when the deployer sets TEMPORAL_DISABLE_WRITE_ACTIONS=false, knowingly, then the UI’s write actions are on, and only then', () => {
    const on = project({ ...DEPLOYER_ENV, TEMPORAL_DISABLE_WRITE_ACTIONS: 'false' });
    expect(envOf(on.services['temporal-ui']!).TEMPORAL_DISABLE_WRITE_ACTIONS).toBe('false');
    const empty = project({ ...DEPLOYER_ENV, TEMPORAL_DISABLE_WRITE_ACTIONS: '' });
    expect(envOf(empty.services['temporal-ui']!).TEMPORAL_DISABLE_WRITE_ACTIONS).toBe('true');
  });
});

/** The Dockerfile's stages: the instructions from one FROM to the next, comments left out. */
function dockerStages(): { from: string; name?: string; lines: string[] }[] {
  const lines = fs
    .readFileSync(path.join(REPO, 'Dockerfile'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const stages: { from: string; name?: string; lines: string[] }[] = [];
  for (const line of lines) {
    const from = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i);
    if (from) stages.push({ from: from[1]!, name: from[2], lines: [] });
    else stages.at(-1)!.lines.push(line);
  }
  return stages;
}

describe('the Dockerfile', () => {
  const stages = dockerStages();
  const runtime = stages.at(-1)!;
  const npmCommands = stages.flatMap((stage) => stage.lines.filter((line) => /^RUN\b.*\bnpm\s/.test(line)));

  test('when compose builds the app image, then every stage of this Dockerfile runs the same Node LTS line, 22 or later', () => {
    const builds = appServices(production).map(([, service]) => service.build);
    expect(builds.length).toBeGreaterThanOrEqual(4);
    for (const build of builds) expect(build).toMatchObject({ context: REPO, dockerfile: 'Dockerfile' });
    const majors = stages.map((stage) => Number(stage.from.match(/^node:(\d+)-/)?.[1]));
    expect(new Set(majors).size).toBe(1);
    const major = majors[0]!;
    expect(major).toBeGreaterThanOrEqual(22); // Node 20 is past its end of life (April 2026)
    expect(major % 2).toBe(0); // odd lines never become LTS
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    expect(readme.match(/The image runs Node (\d+)/)?.[1]).toBe(String(major));
  });

  test('when compose’s temporal-tls runs in the app image, then the image has openssl to make the certificates with', () => {
    expect(runtime.lines).toContainEqual(expect.stringMatching(/^RUN apt-get update && apt-get install -y --no-install-recommends openssl\b/));
  });

  test('when the image installs dependencies, then it takes exactly the lockfile (npm ci), never npm install', () => {
    expect(npmCommands.length).toBeGreaterThan(0);
    for (const command of npmCommands) {
      expect(command).not.toMatch(/\bnpm\s+(install|i|add|update)\b/);
    }
    expect(npmCommands.filter((command) => /\bnpm\s+ci\b/.test(command)).length).toBeGreaterThan(0);
  });

  test('when the runtime stage is assembled, then its node_modules hold no dev dependency, so no @temporalio/testing', () => {
    const copy = runtime.lines.find((line) => /^COPY\s+--from=(\S+)\s+\S*node_modules\s/.test(line));
    const source = stages.find((stage) => stage.name === copy?.match(/--from=(\S+)/)?.[1]);
    expect(source?.lines.filter((line) => /\bnpm\s/.test(line))).toEqual([expect.stringMatching(/^RUN npm ci --omit=dev\b/)]);
    expect(runtime.lines.join('\n')).not.toContain('@temporalio/testing');
    // --omit=dev leaves it out only as a dev dependency, in package.json and in the lockfile.
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    expect(pkg.dependencies).not.toHaveProperty(['@temporalio/testing']);
    expect(pkg.devDependencies).toHaveProperty(['@temporalio/testing']);
    const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    expect(lock.packages['node_modules/@temporalio/testing']?.dev).toBe(true);
  });
});

test('when secrets are kept in .env, then git ignores it and the image build never receives it', () => {
  expect(spawnSync('git', ['check-ignore', '--quiet', '--no-index', '.env'], { cwd: REPO }).status).toBe(0);
  const dockerignore = fs.readFileSync(path.join(REPO, '.dockerignore'), 'utf8').split('\n');
  expect(dockerignore).toContain('.env');
});
