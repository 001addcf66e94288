import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/net/free-port';

// `npm run demo`, as a newcomer runs it: the real embedded dev server, worker, ingress, PGlite,
// outbox and the Stripe emulator, with signed events. `--exit` stops it after the purchases.
test('when the offline demo runs, then both purchases are fulfilled and two receipts reach the outbox', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-'));
  try {
    const [port, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(process.execPath, [require.resolve('tsx/cli'), 'scripts/demo.ts', '--exit'], {
      cwd: path.resolve(__dirname, '../..'),
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        DATA_DIR: dataDir,
        PORT: String(port),
        TEMPORAL_DEV_SERVER_PORT: String(temporalPort),
        TEMPORAL_UI_PORT: String(uiPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));

    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('Look around:') });
    expect(output.match(/is fulfilled/g)).toHaveLength(2);
    expect(output).toContain('is awaiting_payment');
    expect(fs.readdirSync(path.join(dataDir, 'outbox')).filter((f) => f.endsWith('.eml'))).toHaveLength(2);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}, 120_000);
