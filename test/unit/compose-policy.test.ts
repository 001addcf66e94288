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
  volumes?: { source: string; target: string }[];
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
