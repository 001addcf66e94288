import { DefaultLogger, Runtime } from '@temporalio/worker';

// Keep test output to what matters: worker state changes at INFO, and sdk-core's warning that the
// Java test server does not advertise newer capabilities, drown the results.
Runtime.install({
  logger: new DefaultLogger('WARN'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
});
