import type { Database } from './database';
import { migrate } from './migrations';
import { openPglite } from './pglite';
import { openPostgres } from './postgres';

export type { Database, Queryable } from './database';
export { FulfillmentStore } from './fulfillment-store';
export { migrate } from './migrations';

/** PostgreSQL when `databaseUrl` is set, otherwise PGlite persisted under `pgliteDir`; migrated either way. */
export async function openDatabase(options: { databaseUrl?: string; pgliteDir?: string }): Promise<Database> {
  const db = options.databaseUrl ? await openPostgres(options.databaseUrl) : await openPglite(options.pgliteDir);
  await migrate(db);
  return db;
}
