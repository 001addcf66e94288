import type { Connection } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { status as grpcStatus } from '@grpc/grpc-js';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/definitions';
import { StartupError } from '../config';

/** The client's or the worker's (NativeConnection) connection: both carry the operator service. */
type WithOperatorService = Pick<Connection, 'operatorService'>;

/**
 * Registers the custom search attributes operators filter on. Idempotent: attributes that
 * already exist are left alone. Used at start against the embedded dev server and by
 * `npm run temporal:setup` against any other cluster.
 */
export async function registerSearchAttributes(connection: WithOperatorService, namespace: string): Promise<string[]> {
  const known = (await listSearchAttributeNames(connection, namespace)) ?? new Set();
  const missing = SEARCH_ATTRIBUTE_KEYS.filter((key) => !known.has(key.name));
  if (missing.length > 0) {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map((key) => [key.name, encodeSearchAttributeIndexedValueType(key.type)!]),
      ),
    });
  }
  return missing.map((key) => key.name);
}

/**
 * Refuses to run workflows on a namespace that lacks our search attributes: every workflow task
 * would fail with BadSearchAttributes, forever and silently, after the webhooks were acknowledged.
 */
export async function assertSearchAttributesRegistered(connection: WithOperatorService, namespace: string): Promise<void> {
  const known = await listSearchAttributeNames(connection, namespace);
  if (!known) return; // a server that cannot list them (Temporal's Java test server) accepts any
  const missing = SEARCH_ATTRIBUTE_KEYS.filter((key) => !known.has(key.name)).map((key) => key.name);
  if (missing.length > 0) {
    throw new StartupError(
      `Search attributes ${missing.join(', ')} are not registered in Temporal namespace "${namespace}": ` +
        'run `npm run temporal:setup` (with the same TEMPORAL_* settings) once, then start the worker again.',
    );
  }
}

/** The namespace's search attribute names, or undefined when the server cannot list them. */
async function listSearchAttributeNames(connection: WithOperatorService, namespace: string): Promise<Set<string> | undefined> {
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    return new Set([...Object.keys(existing.customAttributes ?? {}), ...Object.keys(existing.systemAttributes ?? {})]);
  } catch (err) {
    if ((err as { code?: number }).code === grpcStatus.UNIMPLEMENTED) return undefined;
    throw err;
  }
}
