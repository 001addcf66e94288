/**
 * `npm start`: the product on embedded defaults. For now, the Temporal dev server with its Web UI,
 * its state persisted under DATA_DIR.
 */
import { ConfigError, loadConfig } from './config';
import { startEmbeddedDevServer } from './temporal/dev-server';

async function main(): Promise<void> {
  const config = loadConfig();
  if (config.temporal.address) {
    console.log(`Temporal: ${config.temporal.address} (namespace ${config.temporal.namespace}); nothing embedded to run`);
    return;
  }
  const server = await startEmbeddedDevServer({
    dataDir: config.dataDir,
    namespace: config.temporal.namespace,
    port: config.temporal.devServerPort,
    uiPort: config.temporal.uiPort,
  });
  console.log(`Temporal dev server: ${server.address} (state in ${config.dataDir})`);
  console.log(`Temporal UI:         ${server.uiUrl}`);
  console.log('Ctrl-C stops it.');

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await server.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
