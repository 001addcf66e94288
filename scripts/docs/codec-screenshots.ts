/**
 * `npm run docs:codec-screenshots`: the README's pictures of the Temporal UI on the production
 * topology, a paid session's workflow page seen without signing in to the codec server (payloads
 * encrypted) and after signing in (decoded). Needs a Chromium (`apt-get install chromium`, or
 * CHROME_PATH); not part of `npm test`. Writes docs/img/ui-encrypted.png and ui-decoded.png.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer, { type Page } from 'puppeteer-core';
import { freeClusterPorts, startCluster } from '../../src/cluster/topology';
import { startStripeEmulator } from '../../src/stripe/emulator';
import { checkoutEventPayload, deliverLikeStripe } from '../../src/stripe/signed-events';
import { fetchStatus } from '../../test/helpers/status-api';
import { eventually } from '../../test/helpers/eventually';

const OUT = path.resolve(__dirname, '..', '..', 'docs', 'img');
const SECRET = 'whsec_docs';

function chromium(): string {
  if (process.env.CHROME_PATH) return process.env.CHROME_PATH;
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim();
  } catch {
    console.error('No Chromium: apt-get install chromium, or set CHROME_PATH');
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const executablePath = chromium();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docs-cluster-'));
  const emulator = await startStripeEmulator();
  const sessionId = 'cs_test_a1docsScreenshotCodecServer';
  emulator.put({
    id: sessionId,
    status: 'complete',
    paymentStatus: 'paid',
    currency: 'eur',
    customerEmail: 'ada.lovelace@example.org',
    customerName: 'Ada Lovelace',
    lineItems: [
      { id: 'li_docs_a', description: 'Analytical Engine manual', quantity: 1, priceId: 'price_manual', productId: 'prod_manual', unitAmount: 4200 },
      { id: 'li_docs_b', description: 'Punched cards (box of 500)', quantity: 2, priceId: 'price_cards', productId: 'prod_cards', unitAmount: 1250 },
    ],
  });
  const cluster = await startCluster({
    dataDir: dir,
    ports: await freeClusterPorts(),
    appEnv: { PATH: process.env.PATH, HOME: process.env.HOME, STRIPE_SECRET_KEY: 'sk_test_docs', STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_API_BASE: emulator.url, RECONCILE_EVERY: 'off' },
  });
  const browser = await puppeteer.launch({ executablePath, args: ['--no-sandbox'], defaultViewport: { width: 1400, height: 1000 } });
  try {
    await deliverLikeStripe(cluster.proxyUrl, checkoutEventPayload('checkout.session.completed', sessionId), { secret: SECRET });
    await eventually(async () => (await fetchStatus(cluster.proxyUrl, sessionId)).body.status, (status) => status === 'fulfilled', { timeoutMs: 60_000 });
    const workflowUrl = `${cluster.uiUrl}/namespaces/default/workflows/${sessionId}`;
    fs.mkdirSync(OUT, { recursive: true });

    const before = await (await browser.createBrowserContext()).newPage();
    await showInputAndResult(before, workflowUrl);
    await before.screenshot({ path: path.join(OUT, 'ui-encrypted.png') });

    const page = await (await browser.createBrowserContext()).newPage();
    await page.goto(`${cluster.codecUrl}/login`);
    await page.type('input[name=token]', fs.readFileSync(cluster.secrets.codecToken, 'utf8').trim());
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    await showInputAndResult(page, workflowUrl);
    await page.screenshot({ path: path.join(OUT, 'ui-decoded.png') });
    console.log(`Wrote ${path.join(OUT, 'ui-encrypted.png')} and ui-decoded.png`);
  } finally {
    await browser.close();
    await cluster.stop();
    await emulator.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The workflow's page, once the UI has loaded it and asked the codec server. */
async function showInputAndResult(page: Page, url: string): Promise<void> {
  await page.goto(url, { waitUntil: 'load' });
  await new Promise((resolve) => setTimeout(resolve, 6000)); // the UI keeps polling; give it time to render and decode
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
