import fs from 'node:fs';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/definitions';
import { resolveTools } from './tools';

export interface EmbeddedDevServerOptions {
  dataDir: string;
  namespace: string;
  port: number;
  uiPort: number;
}

export interface EmbeddedDevServer {
  address: string;
  uiUrl: string;
  stop(): Promise<void>;
}

/**
 * The zero-config Temporal: the Temporal CLI's dev server as a child process, on loopback,
 * its state in SQLite under the data directory so waiting workflows survive a restart.
 * The SDK's `createLocal` spawns it, waits until it is ready and kills it on `stop()` (SQLite
 * commits are durable, so a kill loses nothing Temporal acknowledged).
 */
export async function startEmbeddedDevServer(options: EmbeddedDevServerOptions): Promise<EmbeddedDevServer> {
  fs.mkdirSync(options.dataDir, { recursive: true });
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: resolveTools().temporalCli,
      ip: '127.0.0.1',
      port: options.port,
      namespace: options.namespace,
      dbFilename: path.join(options.dataDir, 'temporal.sqlite'),
      ui: true,
      uiPort: options.uiPort,
      // Registered at start, so operators can filter on them from the first execution.
      searchAttributes: SEARCH_ATTRIBUTE_KEYS,
    },
  });
  return {
    address: env.address,
    uiUrl: `http://127.0.0.1:${options.uiPort}`,
    stop: () => env.teardown(),
  };
}
