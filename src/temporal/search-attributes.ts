import type { Connection } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { status as grpcStatus } from '@grpc/grpc-js';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/definitions';

/**
 * Registers the custom search attributes operators filter on. Idempotent: attributes that
 * already exist are left alone. Used at start against the embedded dev server and by
 * `npm run temporal:setup` against any other cluster.
 */
export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const known = await listSearchAttributeNames(connection, namespace);
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

async function listSearchAttributeNames(connection: Connection, namespace: string): Promise<Set<string>> {
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    return new Set([...Object.keys(existing.customAttributes ?? {}), ...Object.keys(existing.systemAttributes ?? {})]);
  } catch (err) {
    // Temporal's Java test server cannot list, only add: treat every attribute as missing there.
    if ((err as { code?: number }).code === grpcStatus.UNIMPLEMENTED) return new Set();
    throw err;
  }
}
