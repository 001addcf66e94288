import fs from 'node:fs';
import path from 'node:path';

/** The newest PostgreSQL server installed from Debian's packages (`/usr/lib/postgresql/<major>/bin`). */
export function findPostgresBinDir(root = '/usr/lib/postgresql'): string | undefined {
  if (!fs.existsSync(root)) return undefined;
  const majors = fs
    .readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && fs.existsSync(path.join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] ? path.join(root, majors[0], 'bin') : undefined;
}
