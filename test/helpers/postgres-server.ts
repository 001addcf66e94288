import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPostgresServer as startServer } from '../../src/cluster/postgres-server';
import { freePort } from '../../src/net/free-port';

/** A throwaway PostgreSQL server in a temporary directory, removed on stop. */
export async function startPostgresServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-test-'));
  const server = await startServer({ dataDir: path.join(dir, 'data'), port: await freePort(), fsync: false });
  return {
    url: server.url('postgres'),
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
