import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { StartupError } from '../config';

/**
 * Keeps a data directory its user's alone, once, where a stack starts and before anything writes
 * in it. What exists is fixed (`makePrivate`); what is made later is private too, because the
 * umask covers every writer in this process and its children: PGlite, the embedded Temporal's
 * SQLite, the outbox.
 */
export function keepPrivate(dir: string): void {
  process.umask(0o077);
  makePrivate(dir);
}

/**
 * Makes `dir` (followed if it is a symlink) and every directory in it 0700 and every file 0600,
 * fixing what an older version, a copy or another tool left open. Symlinks inside are not
 * followed (one could point anywhere) and sockets are left alone. What another user owns is
 * theirs: as root, the cluster's PostgreSQL data, which PostgreSQL keeps 0700 itself.
 */
export function makePrivate(dir: string): void {
  if (!fs.existsSync(dir)) return; // made private when it is made, by the umask
  const me = process.getuid?.();
  const visit = (entry: string): void => {
    const stat = lstatUnlessGone(entry);
    if (!stat || (me !== undefined && stat.uid !== me)) return;
    if (stat.isDirectory()) {
      setMode(entry, stat, 0o700);
      for (const name of readdirUnlessGone(entry)) visit(path.join(entry, name));
    } else if (stat.isFile()) {
      setMode(entry, stat, 0o600);
    }
  };
  visit(fs.realpathSync(dir));
}

/**
 * Writes `file` at 0600, also over an existing file of a wider mode: the data goes into a new
 * file renamed over the old one, so no reader who opened the old one before can read it.
 */
export function writePrivateFile(file: string, data: string | Uint8Array): void {
  const temporary = `${file}.${randomUUID()}.tmp`;
  fs.writeFileSync(temporary, data, { mode: 0o600, flag: 'wx' });
  fs.renameSync(temporary, file);
}

function setMode(entry: string, stat: fs.Stats, mode: number): void {
  if ((stat.mode & 0o7777) === mode) return;
  try {
    fs.chmodSync(entry, mode);
  } catch (err) {
    if (isGone(err)) return;
    throw new StartupError(`Cannot make ${entry} private (${(err as NodeJS.ErrnoException).code}): the data directory must be on a writable file system`);
  }
}

/** Entries can vanish while we walk: another process of the stack renames its temporary files. */
function lstatUnlessGone(entry: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(entry);
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

function readdirUnlessGone(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if (isGone(err)) return [];
    throw err;
  }
}

function isGone(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}
