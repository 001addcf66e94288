import { execFileSync } from 'node:child_process';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { sdkMetricsExporter } from '../src/temporal/runtime';

// The SDK's metrics exporter, as `npm start` runs it, so /metrics shows the SDK's worker metrics in
// tests too. Its address is fixed before anything native starts, and asked of a child process
// because this file cannot await; a port per test file keeps files in one process apart.
const sdkMetricsPort = Number(
  execFileSync(process.execPath, [
    '-e',
    "const s = require('net').createServer().listen(0, '127.0.0.1', () => { process.stdout.write(String(s.address().port)); s.close(); })",
  ]),
);

// Keep test output to what matters: worker state changes at INFO, and sdk-core's warning that the
// Java test server does not advertise newer capabilities, drown the results.
Runtime.install({
  logger: new DefaultLogger('WARN'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } }, metrics: sdkMetricsExporter(sdkMetricsPort) },
});
