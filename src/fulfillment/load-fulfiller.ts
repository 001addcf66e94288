import path from 'node:path';
import { StartupError } from '../config';
import { stockFulfiller, type Fulfiller } from './fulfiller';
import type { OrderSource } from './order-source';

/**
 * The merchant's fulfiller for `npm start` and `npm run worker`: the module FULFILLER_MODULE names
 * (exporting `fulfiller`, or a default export, with a `fulfillLineItem` function), else the stock
 * fulfiller. Lets a merchant plug in their own delivery without changing this code.
 */
export function loadFulfiller(modulePath = process.env.FULFILLER_MODULE): Fulfiller {
  if (!modulePath) return stockFulfiller;
  return loadPlugin<Fulfiller>('FULFILLER_MODULE', modulePath, 'fulfiller', 'fulfillLineItem', 'fulfillLineItem(order, tx)');
}

/**
 * The merchant's order store for orders paid by PaymentIntent: the module ORDER_SOURCE_MODULE
 * names (exporting `orderSource`, or a default export, with a `loadOrder` function), else
 * undefined: the app's `orders` table.
 */
export function loadOrderSource(modulePath = process.env.ORDER_SOURCE_MODULE): OrderSource | undefined {
  if (!modulePath) return undefined;
  return loadPlugin<OrderSource>('ORDER_SOURCE_MODULE', modulePath, 'orderSource', 'loadOrder', 'loadOrder(orderId)');
}

function loadPlugin<T>(variable: string, modulePath: string, exportName: string, method: string, signature: string): T {
  const resolved = path.resolve(modulePath);
  let loaded: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a module named at run time, loaded once at start
    loaded = require(resolved) as Record<string, unknown>;
  } catch (err) {
    throw new StartupError(`${variable}=${modulePath} could not be loaded: ${(err as Error).message}`);
  }
  const plugin = (loaded[exportName] ?? loaded.default) as Record<string, unknown> | undefined;
  if (typeof plugin?.[method] !== 'function') {
    throw new StartupError(`${variable}=${modulePath} exports no \`${exportName}\` with a ${signature} function`);
  }
  return plugin as T;
}
