import fs from 'node:fs';
import path from 'node:path';

/**
 * A secret made once and kept in `file`, readable by its owner only, so a restart finds the same
 * one (the cluster's database password, the embedded codec server's token).
 */
export function keptSecret(file: string, make: () => string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (!fs.existsSync(file)) fs.writeFileSync(file, make(), { mode: 0o600 });
  return fs.readFileSync(file, 'utf8').trim();
}
