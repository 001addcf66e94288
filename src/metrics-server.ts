import express from 'express';
import { listen, type RunningIngress } from './ingress/app';
import { metricsHandler, type Metrics } from './metrics';

/**
 * A worker-only process's /metrics (METRICS_PORT): it has no ingress to serve them on. The same
 * handler as the ingress's, so a scrape reads the same way whichever process it hits.
 */
export async function serveMetrics(metrics: Metrics, port: number, host?: string): Promise<RunningIngress> {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', metricsHandler(metrics));
  return listen(app, port, host);
}
