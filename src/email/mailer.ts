import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import SMTPTransport from 'nodemailer/lib/smtp-transport';
import { writePrivateFile } from '../shared/private-dir';
import type { RenderedEmail } from './render';

export interface OutgoingEmail extends RenderedEmail {
  to: string;
  /** Deterministic, so a resend after a crash is recognisably the same message. */
  messageId: string;
}

export interface Mailer {
  send(email: OutgoingEmail): Promise<void>;
  /** Where mail goes, for the start-up banner: never credentials. */
  readonly description: string;
  close(): void;
}

/**
 * How long the mailer waits on an SMTP server before giving up: long enough that a slow server is
 * waited for rather than sent a second copy. A send may outlive its activity attempt (2 minutes at
 * most without a reply); its claim on the email, renewed until the send settles
 * (activities/index.ts), makes the retry wait for it instead of sending again.
 */
export const SMTP_TIMEOUTS = { connectionTimeout: 15_000, greetingTimeout: 30_000, socketTimeout: 60_000 } as const;

/** Real SMTP, e.g. `smtp://user:pass@mail.example.com:587` or `smtps://...:465`. */
export function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  // Built here so the timeouts survive: given a URL, createTransport keeps nothing but the URL.
  const transport = nodemailer.createTransport(new SMTPTransport({ url: smtpUrl, ...SMTP_TIMEOUTS }));
  const url = new URL(smtpUrl);
  return {
    description: `SMTP ${url.protocol}//${url.host}`,
    async send(email) {
      await transport.sendMail({ from, ...email });
    },
    close: () => transport.close(),
  };
}

/** No SMTP configured: each message is written as an `.eml` file any mail client opens. */
export function createOutboxMailer(outboxDir: string, from: string): Mailer {
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    description: `outbox ${outboxDir}`,
    async send(email) {
      const info = await transport.sendMail({ from, ...email });
      fs.mkdirSync(outboxDir, { recursive: true, mode: 0o700 });
      // Named after the Message-ID: a resend replaces the file instead of adding a second one.
      // 0600: it holds the customer's address.
      const name = email.messageId.replace(/[<>]/g, '').replace(/[^A-Za-z0-9._-]/g, '_');
      writePrivateFile(path.join(outboxDir, `${name}.eml`), info.message as Buffer);
    },
    close: () => transport.close(),
  };
}
