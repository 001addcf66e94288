import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { makePrivate } from '../shared/private-dir';
import type { Database, Queryable } from './database';

// The product's tables are small: PostgreSQL's default 128 MB of shared buffers would be most of
// the process's memory (docs/benchmarks.md).
const POSTGRESQL_CONF = "shared_buffers = '16MB'";

/** PostgreSQL compiled to WebAssembly, in-process, persisted under `dataDir`: the zero-config default. */
export async function openPglite(dataDir?: string): Promise<Database> {
  if (dataDir) {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) await initializeElsewhere(dataDir);
  }
  const db = await PGlite.create(dataDir, { postgresqlconf: POSTGRESQL_CONF });
  // PGlite sets some modes itself, past the umask: initdb's files (the first WAL segment among
  // them, which will hold customer emails) 0666, the relation cache 0644 at every start.
  if (dataDir) makePrivate(dataDir);
  const wrap = (q: Pick<PGlite, 'query'>): Queryable => ({
    async query<Row>(sql: string, params: unknown[] = []) {
      return (await q.query<Row>(sql, params)).rows;
    },
  });
  return {
    ...wrap(db),
    description: dataDir ? `PGlite (embedded PostgreSQL) at ${dataDir}` : 'PGlite (embedded PostgreSQL) in memory',
    transaction: (work) => db.transaction((tx) => work(wrap(tx))),
    ping: async () => {
      await db.query('SELECT 1');
    },
    close: () => db.close(),
  };
}

/**
 * Creates the data directory (initdb) in a short-lived child process. WebAssembly memory never
 * shrinks, and initdb's peak (about 600 MB) would otherwise stay resident for the process's life.
 */
async function initializeElsewhere(dataDir: string): Promise<void> {
  const script = `const { PGlite } = require(process.argv[1]);
PGlite.create(process.argv[2], { postgresqlconf: process.argv[3] }).then((db) => db.close()).catch((err) => { console.error(err); process.exit(1); });`;
  await promisify(execFile)(process.execPath, ['-e', script, require.resolve('@electric-sql/pglite'), dataDir, POSTGRESQL_CONF]);
}
