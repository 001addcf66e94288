import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const { History } = temporal.api.history.v1;

/** Recorded histories of every branch, replayed by test/workflow/replay.test.ts. */
export const HISTORIES_DIR = path.join(__dirname, '..', 'fixtures', 'histories');

/**
 * With RECORD_HISTORIES set to a directory (`npm run histories:record`), saves an execution's
 * history (its latest run, or `runId`) there as `<name>.json`, as the server recorded it.
 * Otherwise does nothing.
 */
export async function keepHistory(name: string, client: Client, workflowId: string, runId?: string): Promise<void> {
  const dir = process.env.RECORD_HISTORIES;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  // protobufjs's own object form (the SDK's historyToJSON trips over a second copy of protobufjs here).
  const json = History.toObject(History.fromObject(history), { longs: String, enums: String, bytes: String });
  fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(json, null, 1)}\n`);
}

/** A history kept by `keepHistory`. */
export function readHistory(file: string): temporal.api.history.v1.History {
  return History.fromObject(JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>);
}
