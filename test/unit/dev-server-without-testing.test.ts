/**
 * The image installs no dev dependency (`npm ci --omit=dev`), so `@temporalio/testing`, which the
 * embedded dev server uses, is not there. Everything pointed at a Temporal server must still load,
 * and the embedded default must say what to do instead of a stack trace.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

jest.mock('@temporalio/testing', () => {
  throw Object.assign(new Error("Cannot find module '@temporalio/testing' from 'src/temporal/dev-server.ts'"), {
    code: 'MODULE_NOT_FOUND',
  });
});

test('when @temporalio/testing is not installed, then the connection to a Temporal server at TEMPORAL_ADDRESS still loads', async () => {
  const { remoteTemporal } = await import('../../src/temporal/connection');
  expect(remoteTemporal('temporal:7233').connectionOptions.address).toBe('temporal:7233');
});

test('when @temporalio/testing is not installed, then starting the embedded dev server says to set TEMPORAL_ADDRESS', async () => {
  const { startEmbeddedDevServer } = await import('../../src/temporal/dev-server');
  const { StartupError } = await import('../../src/config');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'no-testing-'));
  const started = startEmbeddedDevServer({ dataDir, namespace: 'default', port: 1, uiPort: 2 });
  await expect(started).rejects.toBeInstanceOf(StartupError);
  fs.rmSync(dataDir, { recursive: true, force: true });
  await expect(started).rejects.toThrow(
    'the embedded Temporal dev server needs @temporalio/testing, a dev dependency this install omits (npm ci --omit=dev): set TEMPORAL_ADDRESS to a Temporal server, or install with `npm ci`',
  );
});
