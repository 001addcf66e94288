/**
 * deploy/postgres/checkout-database.sh, compose's `checkout-database` service, run as compose runs
 * it (psql, the superuser's credentials in PG* variables) against a real PostgreSQL with scram
 * passwords: the app gets a role and a database of its own, and nothing of Temporal's.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startPostgresServer, type PostgresServer } from '../../src/cluster/postgres-server';
import { freePort } from '../../src/net/free-port';
import { openDatabase } from '../../src/store';
import { findPostgresBinDir } from '../../src/store/postgres-binaries';

const SCRIPT = path.resolve(__dirname, '../../deploy/postgres/checkout-database.sh');
const SUPERUSER_PASSWORD = 'superuser-password-for-the-test';

interface Server {
  postgres: PostgresServer;
  dir: string;
}
const servers: Server[] = [];

async function newServer(): Promise<PostgresServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-database-'));
  const postgres = await startPostgresServer({ dataDir: path.join(dir, 'data'), port: await freePort(), fsync: false, password: SUPERUSER_PASSWORD });
  servers.push({ postgres, dir });
  return postgres;
}
afterAll(async () => {
  for (const { postgres, dir } of servers) {
    await postgres.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** As compose's `checkout-database` service runs it. */
function runScript(server: PostgresServer, checkoutPassword: string) {
  const result = spawnSync('sh', [SCRIPT], {
    env: {
      PATH: `${findPostgresBinDir()}:${process.env.PATH}`,
      PGHOST: '127.0.0.1',
      PGPORT: String(server.port),
      PGUSER: 'postgres',
      PGPASSWORD: SUPERUSER_PASSWORD,
      CHECKOUT_DB_PASSWORD: checkoutPassword,
    },
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return result;
}

const checkoutUrl = (server: PostgresServer, password: string, database = 'checkout') =>
  `postgres://checkout:${password}@127.0.0.1:${server.port}/${database}`;

async function asSuperuser<T>(server: PostgresServer, database: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server.url(database) });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Connects and disconnects, or rejects with the server's reason. */
async function connect(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('on a server holding Temporal\'s databases', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await newServer();
    // As temporal-schema leaves them before checkout-database runs.
    await asSuperuser(server, 'postgres', async (client) => {
      await client.query('CREATE DATABASE temporal');
      await client.query('CREATE DATABASE temporal_visibility');
    });
  });

  test('when the script runs, then the app\'s role owns its own database, runs the app there, is no superuser, and can connect to no other database', async () => {
    expect(runScript(server, 'first-password').stdout).toContain('role checkout owns database checkout');

    const db = await openDatabase({ databaseUrl: checkoutUrl(server, 'first-password') }); // the app's migrations
    await db.query("INSERT INTO stock (product_id, on_hand) VALUES ('prod_probe', 3)");
    await db.close();

    const [role] = await asSuperuser(server, 'postgres', async (client) => {
      const result = await client.query(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = 'checkout'",
      );
      return result.rows;
    });
    expect(role).toEqual({ rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false });
    const owners = await asSuperuser(server, 'checkout', async (client) => {
      const result = await client.query("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
      return result.rows.map((row: { tableowner: string }) => row.tableowner);
    });
    expect(owners).toEqual(['checkout']);

    for (const database of ['temporal', 'temporal_visibility', 'postgres']) {
      await expect(connect(checkoutUrl(server, 'first-password', database))).rejects.toThrow(
        `permission denied for database "${database}"`,
      );
    }
  });

  test('when it runs again with a new password, then only the new one logs in and the data stays', async () => {
    runScript(server, 'second-password');
    await expect(connect(checkoutUrl(server, 'first-password'))).rejects.toThrow('password authentication failed for user "checkout"');
    const db = await openDatabase({ databaseUrl: checkoutUrl(server, 'second-password') });
    expect(await db.query("SELECT on_hand FROM stock WHERE product_id = 'prod_probe'")).toEqual([{ on_hand: 3 }]);
    await db.close();
  });
});

test('when the database `checkout` was made by an older compose file as the superuser, then it passes to the app\'s role, tables and all', async () => {
  const server = await newServer();
  await asSuperuser(server, 'postgres', (client) => client.query('CREATE DATABASE checkout'));
  const old = await openDatabase({ databaseUrl: server.url('checkout') }); // the app, as the superuser
  await old.query("INSERT INTO stock (product_id, on_hand) VALUES ('prod_old', 7)");
  await old.close();

  runScript(server, 'app-password');

  const db = await openDatabase({ databaseUrl: checkoutUrl(server, 'app-password') });
  expect(await db.query("SELECT on_hand FROM stock WHERE product_id = 'prod_old'")).toEqual([{ on_hand: 7 }]);
  // Only a table's owner may alter it, as the next migration will.
  await db.query('ALTER TABLE stock ADD COLUMN probe integer');
  await db.close();
});
