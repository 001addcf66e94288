import { Runtime, type MetricsExporterConfig } from '@temporalio/worker';

/**
 * The Temporal SDK's own worker metrics (task slots, pollers, latencies), served by the SDK
 * runtime's Prometheus exporter on loopback only: a process's `/metrics` fetches and appends them,
 * so operators scrape one endpoint per process. Named as Prometheus expects (`_total` counters,
 * durations in seconds).
 */
export function sdkMetricsExporter(port: number): MetricsExporterConfig {
  return {
    prometheus: {
      bindAddress: `127.0.0.1:${port}`,
      countersTotalSuffix: true,
      unitSuffix: true,
      useSecondsForDurations: true,
    },
  };
}

/**
 * Installs the SDK runtime with its metrics exporter on `port`. Only once per process, and before
 * anything opens a native connection or an embedded server (they would install the default runtime).
 */
export function installRuntimeWithMetrics(port: number): void {
  Runtime.install({ telemetryOptions: { metrics: sdkMetricsExporter(port) } });
}

/**
 * Where the installed runtime exports the SDK's metrics, or undefined when it exports none (an
 * ingress-only process, or a runtime installed without an exporter). Read from the options the
 * runtime keeps, which it reuses when it starts again after going idle.
 */
export function sdkMetricsUrl(): string | undefined {
  const metrics = Runtime.defaultOptions.telemetryOptions?.metrics;
  if (!metrics || !('prometheus' in metrics)) return undefined;
  return `http://${metrics.prometheus.bindAddress}/metrics`;
}
