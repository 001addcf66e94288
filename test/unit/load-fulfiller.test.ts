import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadFulfiller } from '../../src/fulfillment/load-fulfiller';
import { stockFulfiller } from '../../src/fulfillment/fulfiller';
import { StartupError } from '../../src/config';

describe('loadFulfiller', () => {
  test('when FULFILLER_MODULE is unset, then the stock fulfiller is used', () => {
    expect(loadFulfiller(undefined)).toBe(stockFulfiller);
  });

  test('when it names a module exporting a fulfiller, then that fulfiller is used', () => {
    const loaded = loadFulfiller(path.join(__dirname, '..', 'fixtures', 'slow-fulfiller.ts'));
    expect(loaded).not.toBe(stockFulfiller);
    expect(typeof loaded.fulfillLineItem).toBe('function');
  });

  test('when the module is missing or exports no fulfiller, then start-up stops with one clear line', () => {
    expect(() => loadFulfiller('/nonexistent/fulfiller.js')).toThrow(StartupError);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulfiller-'));
    const empty = path.join(dir, 'empty.js');
    fs.writeFileSync(empty, 'module.exports = { somethingElse: 1 };');
    try {
      expect(() => loadFulfiller(empty)).toThrow(/exports no `fulfiller` with a fulfillLineItem/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
