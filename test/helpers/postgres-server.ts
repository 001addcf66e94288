import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findPostgresBinDir } from '../../src/store/postgres-binaries';
import { freePort } from '../../src/net/free-port';
import { startProcess, waitForPort } from './processes';

/**
 * A real PostgreSQL server from Debian's packages (installed by `npm run provision` when missing),
 * in a throwaway data directory, on 127.0.0.1. PostgreSQL refuses to run as root, so as root it
 * runs as the `postgres` system user the package creates.
 */
export async function startPostgresServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const bin = findPostgresBinDir();
  if (!bin) throw new Error('PostgreSQL server binaries not found: run `npm run provision` (installs Debian package postgresql)');
  // Spawned directly under the postgres user's IDs (not through runuser), so our signals reach the server itself.
  const user: { uid?: number; gid?: number } = process.getuid?.() === 0 ? postgresUser() : {};

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-test-'));
  if (user.uid !== undefined && user.gid !== undefined) fs.chownSync(dir, user.uid, user.gid);
  const dataDir = path.join(dir, 'data');
  execFileSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync'], { stdio: 'pipe', ...user });

  const port = await freePort();
  const proc = startProcess(
    path.join(bin, 'postgres'),
    ['-D', dataDir, '-h', '127.0.0.1', '-p', String(port), '-k', dir, '-c', 'fsync=off'],
    user,
  );
  try {
    await waitForPort(port, proc.child);
  } catch (err) {
    await proc.stop();
    throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${proc.output()}`);
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await proc.stop('SIGINT'); // fast shutdown
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}
