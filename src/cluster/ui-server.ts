import fs from 'node:fs';
import path from 'node:path';
import { writePrivateFile } from '../shared/private-dir';
import type { ClusterTools } from '../temporal/tools';
import { startProcess, waitForPort, type ManagedProcess } from './processes';
import type { TemporalTlsFiles } from './temporal-tls';

/**
 * The Temporal Web UI server (its assets embedded), on 127.0.0.1, pointed at the Temporal frontend,
 * which it reaches with mutual TLS (the UI's own client certificate; the frontend's checked against
 * the cluster's CA and host name). Its write actions (cancel, terminate, signal, reset, start, batch
 * operations) are off unless `writeActions` is set: whoever reaches its port can then only read.
 */
export async function startUiServer(options: {
  tools: ClusterTools;
  dir: string;
  port: number;
  temporalAddress: string;
  tls: TemporalTlsFiles;
  /** Lets the UI's users cancel, terminate, signal, reset and start executions. Off by default (TEMPORAL_DISABLE_WRITE_ACTIONS). */
  writeActions?: boolean;
  /** The codec server; the browser sends it the operator's session cookie (cross-origin credentials). */
  codecEndpoint?: string;
  onLine?: (line: string) => void;
}): Promise<{ url: string; process: ManagedProcess; stop(): Promise<void> }> {
  const configDir = path.join(options.dir, 'config');
  fs.mkdirSync(configDir, { recursive: true });
  const { tls } = options;
  writePrivateFile(
    path.join(configDir, 'cluster.yaml'),
    `# Written by npm run cluster.
temporalGrpcAddress: ${options.temporalAddress}
host: 127.0.0.1
port: ${options.port}
enableUi: true
defaultNamespace: default
refreshInterval: 1m
# Read only unless the operator turned write actions on (TEMPORAL_DISABLE_WRITE_ACTIONS=false).
disableWriteActions: ${options.writeActions ? 'false' : 'true'}
tls:
  caFile: "${tls.ca}"
  certFile: "${tls.clients.ui.cert}"
  keyFile: "${tls.clients.ui.key}"
  serverName: "${tls.serverName}"
  # Without it the UI server would not check the frontend's certificate at all.
  enableHostVerification: true
cors:
  allowOrigins:
    - http://127.0.0.1:${options.port}
${
  options.codecEndpoint
    ? `codec:
  endpoint: ${options.codecEndpoint}
  passAccessToken: false
  includeCredentials: true
`
    : ''
}`,
  );
  const proc = startProcess(options.tools.uiServer, ['--root', options.dir, '--config', 'config', '--env', 'cluster', 'start'], {
    onLine: options.onLine,
  });
  try {
    await waitForPort(options.port, proc.child);
  } catch (err) {
    await proc.stop();
    throw new Error(`Temporal UI server did not start: ${(err as Error).message}\n${proc.output().slice(-4000)}`);
  }
  return { url: `http://127.0.0.1:${options.port}`, process: proc, stop: () => proc.stop() };
}
