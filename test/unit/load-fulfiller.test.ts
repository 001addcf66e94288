import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadFulfiller, loadOrderSource } from '../../src/fulfillment/load-fulfiller';
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

describe('loadOrderSource', () => {
  test('when ORDER_SOURCE_MODULE is unset, then the app’s orders table serves (no module)', () => {
    expect(loadOrderSource(undefined)).toBeUndefined();
  });

  test('when it names a module exporting an order source, then that source is used; one without loadOrder stops start-up with one line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'order-source-'));
    const good = path.join(dir, 'orders.js');
    const bad = path.join(dir, 'bad.js');
    fs.writeFileSync(good, 'module.exports = { orderSource: { loadOrder: async (orderId) => (orderId === "o1" ? { orderId } : null) } };');
    fs.writeFileSync(bad, 'module.exports = { orderSource: {} };');
    try {
      expect(typeof loadOrderSource(good)?.loadOrder).toBe('function');
      expect(() => loadOrderSource(bad)).toThrow(/ORDER_SOURCE_MODULE=.* exports no `orderSource` with a loadOrder\(orderId\) function/);
      expect(() => loadOrderSource('/nonexistent/orders.js')).toThrow(StartupError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
