import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from '../config';
import { startEmbeddedDevServer, type EmbeddedDevServer } from './dev-server';

export interface TemporalTarget {
  namespace: string;
  /** For NativeConnection (worker) and, being a superset of what it needs, for the client's Connection. */
  connectionOptions: NativeConnectionOptions;
  /** Set when we started the dev server ourselves. */
  embedded?: EmbeddedDevServer;
}

/** A Temporal cluster or Temporal Cloud at `address`, with the rest (namespace, TLS, API key) from the SDK's envconfig. */
export function remoteTemporal(address: string, defaultNamespace = 'default'): TemporalTarget {
  const { connectionOptions, namespace } = loadClientConnectConfig();
  return { namespace: namespace ?? defaultNamespace, connectionOptions: { ...connectionOptions, address } };
}

/**
 * Where Temporal is: TEMPORAL_ADDRESS (a cluster or Temporal Cloud, with TLS and API key read by
 * the SDK's envconfig from TEMPORAL_TLS_*, TEMPORAL_API_KEY, or a TEMPORAL_PROFILE), or, when it
 * is unset, the embedded dev server started here (its UI pointed at `codecEndpoint`, if any).
 */
export async function resolveTemporal(config: Config, codecEndpoint?: string): Promise<TemporalTarget> {
  if (config.temporal.address) return remoteTemporal(config.temporal.address, config.temporal.namespace);
  const embedded = await startEmbeddedDevServer({
    dataDir: config.dataDir,
    namespace: config.temporal.namespace,
    port: config.temporal.devServerPort,
    uiPort: config.temporal.uiPort,
    codecEndpoint,
  });
  return { namespace: config.temporal.namespace, connectionOptions: { address: embedded.address }, embedded };
}
