import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeTemporalConfig } from '../../src/cluster/temporal-server';
import { temporalTlsFiles } from '../../src/cluster/temporal-tls';
import { createOutboxMailer } from '../../src/email/mailer';
import { keptSecret } from '../../src/secret-file';
import { makePrivate } from '../../src/shared/private-dir';
import type { ClusterTools } from '../../src/temporal/tools';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'private-data-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const modeOf = (file: string) => (fs.lstatSync(file).mode & 0o777).toString(8);
/** Every entry under `root` (symlinks not followed) with its mode, as `relative path: mode`. */
function modesUnder(root: string): Record<string, string> {
  const modes: Record<string, string> = { '.': modeOf(root) };
  for (const entry of fs.readdirSync(root, { recursive: true }) as string[]) {
    if (!fs.lstatSync(path.join(root, entry)).isSymbolicLink()) modes[entry] = modeOf(path.join(root, entry));
  }
  return modes;
}

describe('makePrivate', () => {
  test('when a data directory and what is in it are open to others, then every directory becomes 0700 and every file 0600', () => {
    const data = path.join(dir, 'data');
    fs.mkdirSync(path.join(data, 'pglite', 'pg_wal'), { recursive: true });
    fs.mkdirSync(path.join(data, 'outbox'));
    fs.writeFileSync(path.join(data, 'pglite', 'pg_wal', '000000010000000000000001'), 'jenny@example.com');
    fs.writeFileSync(path.join(data, 'outbox', 'receipt.eml'), 'To: jenny@example.com');
    fs.writeFileSync(path.join(data, 'temporal.sqlite'), '');
    fs.writeFileSync(path.join(data, 'codec-token'), 'secret');
    fs.chmodSync(path.join(data, 'pglite', 'pg_wal', '000000010000000000000001'), 0o666);
    fs.chmodSync(path.join(data, 'outbox', 'receipt.eml'), 0o644);
    fs.chmodSync(path.join(data, 'temporal.sqlite'), 0o644);
    fs.chmodSync(path.join(data, 'codec-token'), 0o604);
    for (const sub of ['.', 'pglite', 'pglite/pg_wal', 'outbox']) fs.chmodSync(path.join(data, sub), 0o755);
    fs.chmodSync(path.join(data, 'outbox'), 0o777);

    makePrivate(data);

    expect(modesUnder(data)).toEqual({
      '.': '700',
      pglite: '700',
      'pglite/pg_wal': '700',
      'pglite/pg_wal/000000010000000000000001': '600',
      outbox: '700',
      'outbox/receipt.eml': '600',
      'temporal.sqlite': '600',
      'codec-token': '600',
    });
  });

  test('when a symlink inside points outside, then makePrivate does not follow it: its target keeps its mode', () => {
    const data = path.join(dir, 'data');
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(data);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'shared.txt'), 'for everyone');
    fs.chmodSync(path.join(outside, 'shared.txt'), 0o644);
    fs.chmodSync(outside, 0o755);
    fs.symlinkSync(path.join(outside, 'shared.txt'), path.join(data, 'link-to-file'));
    fs.symlinkSync(outside, path.join(data, 'link-to-dir'));

    makePrivate(data);

    expect(modeOf(data)).toBe('700');
    expect(modeOf(path.join(outside, 'shared.txt'))).toBe('644');
    expect(modeOf(outside)).toBe('755');
  });
});

test('when a kept secret’s file already exists at 0644, then keptSecret makes it 0600 and keeps its value', () => {
  const file = path.join(dir, 'secrets', 'codec-token');
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, 'the-kept-token\n');
  fs.chmodSync(file, 0o644);

  const secret = keptSecret(file, () => 'a-new-token');

  expect(secret).toBe('the-kept-token');
  expect(modeOf(file)).toBe('600');
});

test('when keptSecret makes a new secret, then its file is 0600 and its directory 0700', () => {
  const file = path.join(dir, 'secrets', 'password');

  expect(keptSecret(file, () => 'made-once')).toBe('made-once');

  expect(modeOf(file)).toBe('600');
  expect(modeOf(path.dirname(file))).toBe('700');
  expect(fs.readdirSync(path.dirname(file))).toEqual(['password']); // no temporary file left
});

test('when the outbox writes a message, then its file is 0600, also over an older copy at 0644', async () => {
  const outbox = path.join(dir, 'outbox');
  const mailer = createOutboxMailer(outbox, 'Shop <shop@shop.test>');
  const email = { to: 'jenny@example.com', subject: 'Your receipt', text: 'Thanks', html: '<p>Thanks</p>', messageId: '<receipt.cs_test_1@shop.test>' };
  fs.mkdirSync(outbox);
  fs.writeFileSync(path.join(outbox, 'receipt.cs_test_1_shop.test.eml'), 'an older copy');
  fs.chmodSync(path.join(outbox, 'receipt.cs_test_1_shop.test.eml'), 0o644);

  await mailer.send(email);
  await mailer.send({ ...email, messageId: '<receipt.cs_test_2@shop.test>' });
  mailer.close();

  expect(fs.readdirSync(outbox).sort()).toEqual(['receipt.cs_test_1_shop.test.eml', 'receipt.cs_test_2_shop.test.eml']);
  for (const name of fs.readdirSync(outbox)) expect(modeOf(path.join(outbox, name))).toBe('600');
  expect(fs.readFileSync(path.join(outbox, 'receipt.cs_test_1_shop.test.eml'), 'utf8')).toContain('jenny@example.com');
});

test('when the Temporal server’s config is written, then its files are 0600 (one holds the database password), also over older ones at 0644', () => {
  const options = {
    tools: {} as ClusterTools,
    dir,
    port: 7400,
    postgres: { port: 5440, user: 'postgres', password: 'the-db-password' },
    tls: temporalTlsFiles(path.join(dir, 'tls')),
  };
  const configDir = writeTemporalConfig(options);
  for (const name of fs.readdirSync(configDir)) fs.chmodSync(path.join(configDir, name), 0o644);

  writeTemporalConfig(options);

  expect(fs.readFileSync(path.join(configDir, 'cluster.yaml'), 'utf8')).toContain('the-db-password');
  expect(Object.fromEntries(fs.readdirSync(configDir).map((name) => [name, modeOf(path.join(configDir, name))]))).toEqual({
    'cluster.yaml': '600',
    'dynamicconfig.yaml': '600',
  });
});
