/**
 * Compose's one-shot `temporal-tls` (`node dist/scripts/temporal-tls.js`): the Temporal frontend's
 * CA and certificates, made on the first start and kept in the CA's own volume
 * (TLS_CA_DIR), as `npm run cluster` keeps its own (src/cluster/temporal-tls.ts), then
 * handed out at every start, each holder's pair into its own volume under TLS_OUT_DIR:
 * `server` (Temporal), `ui`, `app` (worker, ingress, setup) and `operator`. TLS_OWNER
 * (`uid:gid`) is who the holders run as: this runs as root to write the volumes, and the keys are
 * 0600.
 */
import { StartupError } from '../src/config';
import { distributeTemporalTls, keptTemporalTls } from '../src/cluster/temporal-tls';

function main(): void {
  const caDir = process.env.TLS_CA_DIR;
  const outDir = process.env.TLS_OUT_DIR;
  if (!caDir || !outDir) throw new StartupError('set TLS_CA_DIR (the CA, kept) and TLS_OUT_DIR (one directory per holder)');
  const owner = process.env.TLS_OWNER?.match(/^(\d+):(\d+)$/);
  if (process.env.TLS_OWNER && !owner) throw new StartupError('TLS_OWNER must be uid:gid, e.g. 1000:1000');
  const dnsNames = (process.env.TLS_SERVER_NAMES ?? 'temporal,localhost').split(',').map((name) => name.trim()).filter(Boolean);

  const tls = keptTemporalTls(caDir, { dnsNames });
  const dirs = distributeTemporalTls(tls, outDir, owner ? { uid: Number(owner[1]), gid: Number(owner[2]) } : undefined);
  console.log(
    `Temporal certificates: ${tls.made.length > 0 ? `made ${tls.made.join(', ')}` : 'kept from the last start'}; ` +
      `handed out to ${Object.keys(dirs).join(', ')}; server names ${dnsNames.join(', ')}`,
  );
}

try {
  main();
} catch (err) {
  console.error(err instanceof StartupError ? err.message : err);
  process.exit(1);
}
