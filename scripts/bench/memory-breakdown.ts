/**
 * Where the all-in-one process's memory goes: the same parts `npm start` loads, one at a time in a
 * fresh process, printing the resident memory after each as a JSON line. Run by the benchmark
 * against its embedded Temporal server (TEMPORAL_ADDRESS), on a task queue of its own.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function report(step: string): void {
  gc();
  console.log(JSON.stringify({ step, rssMb: process.memoryUsage().rss / 1024 / 1024 }));
}

async function main(): Promise<void> {
  report('Node.js and the tsx loader');
  const { NativeConnection, Worker, Runtime, DefaultLogger } = await import('@temporalio/worker');
  await import('../../src/stack');
  report('product code and its dependencies (Temporal SDK, Stripe, Express, pg, nodemailer)');

  const { openDatabase } = await import('../../src/store');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-memory-'));
  const db = await openDatabase({ pgliteDir: dir });
  report('PGlite: PostgreSQL in WebAssembly, opened and migrated');

  const { bundleWorkflows } = await import('../../src/temporal/worker');
  const workflowBundle = await bundleWorkflows(require.resolve('../../workflows'));
  report('workflow bundle built with webpack at start');

  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS! });
  const worker = await Worker.create({ connection, taskQueue: 'bench-memory', workflowBundle });
  await worker.runUntil(new Promise((resolve) => setTimeout(resolve, 2000)));
  report('Temporal worker: core runtime and the workflow VM context');

  await connection.close();
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
