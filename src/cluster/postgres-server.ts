import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { StartupError } from '../config';
import { writePrivateFile } from '../shared/private-dir';
import { findPostgresBinDir } from '../store/postgres-binaries';
import { startProcess, waitForPort, type ManagedProcess } from './processes';

export interface PostgresServer {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/<database>` */
  url(database: string): string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export interface PostgresServerOptions {
  /** Created (initdb) when it holds no cluster yet; reused as it is otherwise. */
  dataDir: string;
  port: number;
  /** Off only for throwaway test data: faster, not crash-safe. */
  fsync?: boolean;
  /** Set at initdb: every connection then authenticates (scram-sha-256). Without it, local connections are trusted. */
  password?: string;
  onLine?: (line: string) => void;
  /**
   * The private data directory this server lives in (DATA_DIR). As root, PostgreSQL runs as the
   * `postgres` user, which must pass through every directory above its own: those from this one
   * down let it through by group, for search only (0710, group postgres). Any other in its way
   * stops the start with one line saying what to do.
   */
  privateDir?: string;
}

/**
 * A real PostgreSQL server from Debian's packages (installed by `npm run provision`), on
 * 127.0.0.1 only, trusting local connections. PostgreSQL refuses to run as root, so as root it
 * runs as the `postgres` system user the package creates.
 */
export async function startPostgresServer(options: PostgresServerOptions): Promise<PostgresServer> {
  const bin = findPostgresBinDir();
  if (!bin) throw new Error('PostgreSQL server binaries not found: run `npm run provision` (installs Debian package postgresql)');
  // Spawned directly under the postgres user's IDs (not through runuser), so our signals reach the server itself.
  const user: { uid?: number; gid?: number } = process.getuid?.() === 0 ? postgresUser() : {};
  const { dataDir, port } = options;
  const socketDir = path.dirname(dataDir);
  fs.mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  if (user.uid !== undefined && user.gid !== undefined) {
    fs.chownSync(socketDir, user.uid, user.gid);
    letThrough(socketDir, { uid: user.uid, gid: user.gid }, options.privateDir);
  }
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    const auth = options.password ? ['-A', 'scram-sha-256', '--pwfile', writePasswordFile(socketDir, options.password, user)] : ['-A', 'trust'];
    try {
      execFileSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', ...auth, '--no-sync'], { stdio: 'pipe', ...user });
    } catch (err) {
      const reason = String((err as { stderr?: Buffer }).stderr ?? '').trim() || (err as Error).message;
      throw new StartupError(`initdb failed in ${dataDir}: ${reason.split('\n').join('; ')}`);
    } finally {
      fs.rmSync(path.join(socketDir, 'initdb-password'), { force: true });
    }
  }
  const args = ['-D', dataDir, '-h', '127.0.0.1', '-p', String(port), '-k', socketDir];
  if (options.fsync === false) args.push('-c', 'fsync=off');
  const proc = startProcess(path.join(bin, 'postgres'), args, { ...user, onLine: options.onLine });
  try {
    await waitForPort(port, proc.child);
    await waitUntilAccepting(bin, port, proc);
  } catch (err) {
    await proc.stop();
    throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${proc.output()}`);
  }
  return {
    port,
    url: (database) => `postgres://postgres${options.password ? `:${encodeURIComponent(options.password)}` : ''}@127.0.0.1:${port}/${database}`,
    process: proc,
    stop: () => proc.stop('SIGINT'), // fast shutdown: active transactions roll back, nothing committed is lost
  };
}

/**
 * The port opens before recovery ends: until then every connection is refused with "the database
 * system is starting up". pg_isready tells the two apart (0 accepting, 1 rejecting, 2 no answer).
 */
async function waitUntilAccepting(bin: string, port: number, proc: ManagedProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`exited with code ${proc.child.exitCode} while starting up`);
    try {
      await promisify(execFile)(path.join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-t', '2']);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`not accepting connections on 127.0.0.1:${port} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** initdb reads the superuser's password from a file only its user can read; removed right after. */
function writePasswordFile(dir: string, password: string, user: { uid?: number; gid?: number }): string {
  const file = path.join(dir, 'initdb-password');
  writePrivateFile(file, `${password}\n`);
  if (user.uid !== undefined && user.gid !== undefined) fs.chownSync(file, user.uid, user.gid);
  return file;
}

/**
 * Lets the postgres user through every directory above `dir` (its own). One inside `privateDir`
 * that we own gets the search bit for the postgres group only: that user can then reach its own
 * directory by name, but not list or read anything of ours. Any other directory in its way is
 * the operator's to open, or to avoid.
 */
function letThrough(dir: string, user: { uid: number; gid: number }, privateDir?: string): void {
  const inside = privateDir ? fs.realpathSync(privateDir) : undefined;
  let parent = fs.realpathSync(dir);
  while (parent !== path.dirname(parent)) {
    parent = path.dirname(parent);
    const stat = fs.statSync(parent);
    if (canSearch(stat, user)) continue;
    const ours = inside !== undefined && (parent === inside || parent.startsWith(inside + path.sep)) && stat.uid === process.getuid?.();
    if (!ours) {
      throw new StartupError(
        `PostgreSQL runs as the postgres user when started as root, and that user cannot pass through ${parent} (mode ${(stat.mode & 0o777).toString(8)}): ` +
          `choose a DATA_DIR it can reach (such as one made by mktemp -d), let it through (chmod o+x ${parent}), or run as a user other than root`,
      );
    }
    fs.chownSync(parent, stat.uid, user.gid);
    fs.chmodSync(parent, (stat.mode & 0o700) | 0o010);
  }
}

/** As the kernel decides for a process with only the user's own group (Node drops supplementary groups when it sets a uid). */
function canSearch(stat: fs.Stats, user: { uid: number; gid: number }): boolean {
  if (stat.uid === user.uid) return (stat.mode & 0o100) !== 0;
  if (stat.gid === user.gid) return (stat.mode & 0o010) !== 0;
  return (stat.mode & 0o001) !== 0;
}

function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}
