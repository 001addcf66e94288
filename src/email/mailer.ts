import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
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

/** Real SMTP, e.g. `smtp://user:pass@mail.example.com:587` or `smtps://...:465`. */
export function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = nodemailer.createTransport(smtpUrl);
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
      fs.mkdirSync(outboxDir, { recursive: true });
      // Named after the Message-ID: a resend replaces the file instead of adding a second one.
      const name = email.messageId.replace(/[<>]/g, '').replace(/[^A-Za-z0-9._-]/g, '_');
      const file = path.join(outboxDir, `${name}.eml`);
      fs.writeFileSync(`${file}.tmp`, info.message as Buffer);
      fs.renameSync(`${file}.tmp`, file);
    },
    close: () => transport.close(),
  };
}
