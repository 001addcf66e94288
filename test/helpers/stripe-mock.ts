import { requireStripeMock } from '../../src/temporal/tools';
import { freePort } from '../../src/net/free-port';
import { startProcess, waitForPort } from '../../src/cluster/processes';

/** Stripe's official API mock (provisioned by `npm run provision`), on loopback, HTTP only. */
export async function startStripeMock(): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const proc = startProcess(requireStripeMock(), ['-http-addr', `127.0.0.1:${port}`]);
  try {
    await waitForPort(port, proc.child);
  } catch (err) {
    await proc.stop();
    throw new Error(`stripe-mock did not start: ${(err as Error).message}\n${proc.output()}`);
  }
  return { url: `http://127.0.0.1:${port}`, stop: () => proc.stop() };
}
