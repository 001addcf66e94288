import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface CapturedMail {
  /** When the server accepted it (ms since the epoch). */
  receivedAt: number;
  envelopeTo: string[];
  raw: string;
  parsed: ParsedMail;
}

export interface TestSmtpServer {
  url: string;
  /** Every message accepted, across restarts. */
  messages: CapturedMail[];
  /** From now on, hold each message this long before accepting it (a slow server). */
  setDelay(ms: number): void;
  /** From now on (null: no longer), hold each message until `hold()` resolves: a slow server on the caller's clock. */
  holdEach(hold: (() => Promise<void>) | null): void;
  /** Messages held now, not yet answered: sends still running. */
  held(): number;
  /** From now on, refuse (or accept again) every recipient, quoting its address as mail servers do. */
  refuseRecipients(refuse: boolean): void;
  /** Down: refuses connections until `start()` listens again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A real SMTP server on 127.0.0.1 that keeps every message it accepts, after `dataDelayMs` when it should be slow. */
export async function startSmtpServer({ dataDelayMs = 0 } = {}): Promise<TestSmtpServer> {
  const messages: CapturedMail[] = [];
  let delayMs = dataDelayMs;
  let hold: (() => Promise<void>) | null = null;
  let held = 0;
  let refusing = false;
  const create = () => {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      // Credentials in SMTP_URL are accepted (the fault suite checks they never reach a log).
      allowInsecureAuth: true,
      onAuth: (auth, _session, callback) => callback(null, { user: auth.username }),
      onRcptTo: (address, _session, callback) =>
        callback(refusing ? Object.assign(new Error(`<${address.address}>: Recipient address rejected`), { responseCode: 550 }) : undefined),
      closeTimeout: 1000, // going down drops open connections after a second
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          // Taken now, so a message keeps the hold it came in under.
          const holding = hold;
          simpleParser(raw)
            .then(async (parsed) => {
              if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
              if (holding) {
                held++;
                await holding().finally(() => held--);
              }
              messages.push({ receivedAt: Date.now(), envelopeTo: session.envelope.rcptTo.map((rcpt) => rcpt.address), raw, parsed });
              callback();
            })
            .catch(callback);
        });
      },
    });
    // A client that dies mid-conversation (a killed worker) resets its connection: not the server's problem.
    server.on('error', () => undefined);
    return server;
  };
  let server = create();
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await listen(0);
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    setDelay: (ms) => void (delayMs = ms),
    holdEach: (next) => void (hold = next),
    held: () => held,
    refuseRecipients: (refuse) => void (refusing = refuse),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
    async start() {
      server = create();
      await listen(port);
    },
  };
}
