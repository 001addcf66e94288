import path from 'node:path';
import { StartupError } from '../config';
import { stockFulfiller, type Fulfiller } from './fulfiller';

/**
 * The merchant's fulfiller for `npm start` and `npm run worker`: the module FULFILLER_MODULE names
 * (exporting `fulfiller`, or a default export, with a `fulfillLineItem` function), else the stock
 * fulfiller. Lets a merchant plug in their own delivery without changing this code.
 */
export function loadFulfiller(modulePath = process.env.FULFILLER_MODULE): Fulfiller {
  if (!modulePath) return stockFulfiller;
  const resolved = path.resolve(modulePath);
  let loaded: { fulfiller?: Fulfiller; default?: Fulfiller };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a module named at run time, loaded once at start
    loaded = require(resolved) as typeof loaded;
  } catch (err) {
    throw new StartupError(`FULFILLER_MODULE=${modulePath} could not be loaded: ${(err as Error).message}`);
  }
  const fulfiller = loaded.fulfiller ?? loaded.default;
  if (typeof fulfiller?.fulfillLineItem !== 'function') {
    throw new StartupError(`FULFILLER_MODULE=${modulePath} exports no \`fulfiller\` with a fulfillLineItem(order, tx) function`);
  }
  return fulfiller;
}
