import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/definitions';
import { StartupError } from '../config';
import { resolveTools } from './tools';

export const SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'];
/**
 * An activity scheduled by a workflow task goes back to the same worker in the task's completion
 * when it has a free slot, without a trip through matching. Off by default in the server; safe,
 * since an activity not started eagerly is dispatched as usual.
 */
export const EAGER_ACTIVITIES = 'system.enableActivityEagerExecution=true';

export interface EmbeddedDevServerOptions {
  dataDir: string;
  namespace: string;
  port: number;
  uiPort: number;
  /** The codec server the UI asks to decode payloads (when they are encrypted). */
  codecEndpoint?: string;
}

export interface EmbeddedDevServer {
  address: string;
  uiUrl: string;
  stop(): Promise<void>;
}

/**
 * The zero-config Temporal: the Temporal CLI's dev server as a child process, on loopback,
 * its state in SQLite under the data directory so waiting workflows survive a restart.
 * The SDK's `createLocal` spawns it, waits until it is ready and kills it on `stop()`.
 *
 * SQLite runs in WAL mode with `synchronous=normal` (about twice the throughput of the default
 * rollback journal, see docs/benchmarks.md). A killed or crashed server loses nothing it
 * acknowledged: a commit is in the WAL file before the call returns. Only an OS crash or power loss
 * can drop the last commits before a checkpoint; the reconciler re-finds those sessions at Stripe.
 */
export async function startEmbeddedDevServer(options: EmbeddedDevServerOptions): Promise<EmbeddedDevServer> {
  fs.mkdirSync(options.dataDir, { recursive: true });
  const { TestWorkflowEnvironment } = await loadTestingPackage();
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
      extraArgs: [
        ...SQLITE_PRAGMAS.flatMap((pragma) => ['--sqlite-pragma', pragma]),
        ...['--dynamic-config-value', EAGER_ACTIVITIES],
        ...(options.codecEndpoint ? ['--ui-codec-endpoint', options.codecEndpoint] : []),
      ],
    },
  });
  return {
    address: env.address,
    uiUrl: `http://127.0.0.1:${options.uiPort}`,
    stop: () => env.teardown(),
  };
}

/**
 * `@temporalio/testing`, which starts the dev server, is a dev dependency: `npm ci` installs it
 * (so `npm start` has it), `npm ci --omit=dev` (the image) does not. Loaded only here, so a
 * process pointed at a Temporal server (TEMPORAL_ADDRESS) never needs it.
 */
async function loadTestingPackage(): Promise<{ TestWorkflowEnvironment: typeof TestWorkflowEnvironment }> {
  try {
    return await import('@temporalio/testing');
  } catch (err) {
    const { code, message } = err as { code?: string; message?: string };
    const notInstalled = (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && message?.includes("'@temporalio/testing'");
    if (!notInstalled) throw err;
    throw new StartupError(
      'the embedded Temporal dev server needs @temporalio/testing, a dev dependency this install omits (npm ci --omit=dev): set TEMPORAL_ADDRESS to a Temporal server, or install with `npm ci`',
    );
  }
}
