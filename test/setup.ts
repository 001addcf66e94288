import { DefaultLogger, Runtime } from '@temporalio/worker';

// Keep test output to what matters: worker state changes at INFO drown the results.
Runtime.install({ logger: new DefaultLogger('WARN') });
