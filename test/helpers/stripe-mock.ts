import { requireStripeMock } from '../../src/temporal/tools';
import { freePort } from '../../src/net/free-port';
import { startProcess, waitForPort } from '../../src/cluster/processes';

/** Stripe's official API mock (provisioned by `npm run provision`), on loopback; the product talks to it over HTTP. */
export async function startStripeMock(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  // `-http-addr` alone still opens HTTPS on [::]:12112 (stripe-mock counts only `-http`/`-http-port`
  // as choosing HTTP), so a second stripe-mock on the machine fails to bind: HTTPS goes to a loopback
  // port of the system's choosing instead.
  const proc = startProcess(requireStripeMock(), ['-http-addr', `127.0.0.1:${port}`, '-https-addr', '127.0.0.1:']);
  try {
    await waitForPort(port, proc.child);
  } catch (err) {
    await proc.stop();
    throw new Error(`stripe-mock did not start: ${(err as Error).message}\n${proc.output()}`);
  }
  return { url: `http://127.0.0.1:${port}`, stop: () => proc.stop() };
}
