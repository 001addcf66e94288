import fs from 'node:fs';
import path from 'node:path';
import { writePrivateFile } from './shared/private-dir';

/**
 * A secret made once and kept in `file`, readable by its owner only, so a restart finds the same
 * one (the cluster's database password, the embedded codec server's token). A file that already
 * exists is made 0600 again, whatever mode an older version or a copy left it with.
 */
export function keptSecret(file: string, make: () => string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  if (fs.existsSync(file)) fs.chmodSync(file, 0o600);
  else writePrivateFile(file, make());
  return fs.readFileSync(file, 'utf8').trim();
}
