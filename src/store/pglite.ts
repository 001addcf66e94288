import fs from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable } from './database';

/** PostgreSQL compiled to WebAssembly, in-process, persisted under `dataDir`: the zero-config default. */
export async function openPglite(dataDir?: string): Promise<Database> {
  if (dataDir) fs.mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
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
