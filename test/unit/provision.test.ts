import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Runs `npm run provision`'s script on a machine stripped of Go, Java, Maven and internet: a PATH
 * holding only node, an empty HOME and a fresh cache.
 */
function provisionOnBareMachine(env: Record<string, string> = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'provision-'));
  fs.symlinkSync(process.execPath, path.join(dir, 'node'));
  const result = spawnSync(process.execPath, [require.resolve('tsx/cli'), 'scripts/provision.ts'], {
    cwd: path.resolve(__dirname, '../..'),
    env: { HOME: dir, PATH: dir, CHECKOUT_FULFILLMENT_CACHE: path.join(dir, 'cache'), ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { ...result, dir };
}

describe('provisioning', () => {
  test('when there is neither a toolchain nor internet, then it stops at once with one line saying what to supply', () => {
    const result = provisionOnBareMachine();
    expect(result.status).toBe(1);
    const errorLines = result.stderr.trim().split('\n');
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toMatch(/cannot continue: temporal CLI: .*install Go >= 1\.25 or set TEMPORAL_CLI_PATH/);
    expect(fs.existsSync(path.join(result.dir, 'cache', 'tools.json'))).toBe(false);
  });

  test('when TEMPORAL_CLI_PATH names a missing file, then it says so', () => {
    const result = provisionOnBareMachine({ TEMPORAL_CLI_PATH: '/nonexistent/temporal' });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('TEMPORAL_CLI_PATH=/nonexistent/temporal does not exist');
  });

  test('when the user brings both server binaries, then they are recorded and stripe-mock is reported as skipped', () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'own-bin-'));
    for (const name of ['temporal', 'temporal-test-server']) fs.writeFileSync(path.join(bin, name), '#!/bin/sh\n', { mode: 0o755 });
    const result = provisionOnBareMachine({
      TEMPORAL_CLI_PATH: path.join(bin, 'temporal'),
      TEMPORAL_TEST_SERVER_PATH: path.join(bin, 'temporal-test-server'),
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('stripe-mock: skipped (no Go >= 1.25)');
    const manifest = JSON.parse(fs.readFileSync(path.join(result.dir, 'cache', 'tools.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toEqual({
      temporalCli: { type: 'existing-path', path: path.join(bin, 'temporal') },
      testServer: { type: 'existing-path', path: path.join(bin, 'temporal-test-server') },
    });
  });
});
