import fs from 'node:fs';
import path from 'node:path';
import type { ClusterTools } from '../temporal/tools';
import { startProcess, waitForPort, type ManagedProcess } from './processes';

/** The Temporal Web UI server (its assets embedded), on 127.0.0.1, pointed at the Temporal frontend. */
export async function startUiServer(options: {
  tools: ClusterTools;
  dir: string;
  port: number;
  temporalAddress: string;
  /** The codec server; the browser sends it the operator's session cookie (cross-origin credentials). */
  codecEndpoint?: string;
  onLine?: (line: string) => void;
}): Promise<{ url: string; process: ManagedProcess; stop(): Promise<void> }> {
  const configDir = path.join(options.dir, 'config');
  fs.mkdirSync(configDir, { recursive: true });
  fs.writeFileSync(
    path.join(configDir, 'cluster.yaml'),
    `# Written by npm run cluster.
temporalGrpcAddress: ${options.temporalAddress}
host: 127.0.0.1
port: ${options.port}
enableUi: true
defaultNamespace: default
refreshInterval: 1m
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
