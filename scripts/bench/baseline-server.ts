/**
 * The benchmark's baseline webhook endpoints, each in a process of its own as the product's ingress is:
 *   BASELINE=verify  verifies the signature and answers: the floor of any webhook endpoint (A).
 *   BASELINE=naive   what Stripe's guide literally describes, synchronously (B): verify, retrieve
 *                    the session with its line items, fulfill them in a database, send the
 *                    receipt, then answer.
 * Settings: PORT, STRIPE_WEBHOOK_SECRET, STRIPE_API_BASE, SMTP_URL, DATA_DIR. Prints `listening <port>`.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import nodemailer from 'nodemailer';
import { PGlite } from '@electric-sql/pglite';
import { createStripeClient, parseStripeApiBase } from '../../src/stripe/sessions';

async function main(): Promise<void> {
  const mode = process.env.BASELINE;
  const secret = process.env.STRIPE_WEBHOOK_SECRET!;
  const stripe = createStripeClient('sk_test_baseline', process.env.STRIPE_API_BASE ? parseStripeApiBase(process.env.STRIPE_API_BASE) : undefined);
  const app = express();

  if (mode === 'verify') {
    app.post('/webhook', express.raw({ type: () => true }), (req, res) => {
      try {
        stripe.webhooks.constructEvent(req.body as Buffer, req.header('stripe-signature') ?? '', secret);
        res.json({ received: true });
      } catch {
        res.status(400).json({ error: 'bad signature' });
      }
    });
  } else if (mode === 'naive') {
    const db = new PGlite(process.env.DATA_DIR);
    await db.exec('CREATE TABLE IF NOT EXISTS fulfilled (session_id text, line_item_id text, quantity int, PRIMARY KEY (session_id, line_item_id))');
    const mailer = nodemailer.createTransport(process.env.SMTP_URL!);
    app.post('/webhook', express.raw({ type: () => true }), async (req, res) => {
      try {
        const event = stripe.webhooks.constructEvent(req.body as Buffer, req.header('stripe-signature') ?? '', secret);
        const sessionId = (event.data.object as { id: string }).id;
        const session = await stripe.checkout.sessions.retrieve(sessionId, { expand: ['line_items'] });
        if (session.payment_status !== 'unpaid') {
          for (const item of session.line_items?.data ?? []) {
            await db.query('INSERT INTO fulfilled VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [sessionId, item.id, item.quantity ?? 1]);
          }
          await mailer.sendMail({
            from: 'Bench <orders@bench.test>',
            to: session.customer_details?.email ?? 'customer@bench.test',
            subject: 'Your receipt',
            text: `Thank you for order ${sessionId}.`,
          });
        }
        res.json({ received: true });
      } catch (err) {
        res.status(500).json({ error: (err as Error).message });
      }
    });
  } else {
    throw new Error('BASELINE must be verify or naive');
  }

  const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    console.log(`listening ${(server.address() as AddressInfo).port}`);
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
