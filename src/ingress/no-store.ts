import type { RequestHandler } from 'express';

/**
 * `Cache-Control: no-store` on every answer of a route, refusals included. The landing page and
 * the status API show an order to whoever holds its ID (docs/security.md, section 5): no shared
 * cache, proxy or browser history may keep a copy for the next person.
 */
export const noStore: RequestHandler = (_req, res, next) => {
  res.set('Cache-Control', 'no-store');
  next();
};
