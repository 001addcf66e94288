/**
 * `npm run faults`: the fault suite. Starts the production topology (as `npm run cluster`) and
 * then the embedded default (as `npm start`), and on each, for each fault kind that applies there,
 * plays FAULTS_SESSIONS orders (default 100; a mix of cards, delayed
 * payments that succeed and that fail) through the proxy with a sender that redelivers like
 * Stripe, injects the fault mid-burst, waits (bounded) for every order to settle, and counts:
 * fulfilled, lost, doubled, wrong, emails resent, non-2xx answers while everything was up, and
 * the time to recover. Writes the table into docs/reliability.md and exits non-zero when
 * anything was lost, doubled or wrong, a non-2xx came while everything was up, Stripe's read
 * limit was hit, or a secret or a customer's data reached a log.
 *   FAULTS_KINDS=temporal-kill,smtp-down   only these kinds
 *   FAULTS_TOPOLOGIES=cluster               only this topology (cluster, embedded)
 */
import fs from 'node:fs';
import path from 'node:path';
import { FAULT_KINDS } from './kinds';
import { startClusterHarness, startEmbeddedHarness, type Harness, type Topology } from './harness';
import { countRow, makeOrders, playOrders, settle, type FaultRow } from './orders';

const DOC = path.join(__dirname, '..', '..', 'docs', 'reliability.md');

export interface FaultRunOptions {
  sessions: number;
  kinds: string[];
  topologies?: Topology[];
  perSecond?: number;
  settleTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface FaultRunResult {
  rows: FaultRow[];
  stripeRateLimited: number;
  leaks: string[];
}

/** The suite itself, for `npm run faults` and the bounded subset in `npm test`. */
export async function runFaults(options: FaultRunOptions): Promise<FaultRunResult> {
  const log = options.log ?? console.log;
  const rows: FaultRow[] = [];
  const leaks: string[] = [];
  let stripeRateLimited = 0;
  for (const topology of options.topologies ?? (['cluster', 'embedded'] as Topology[])) {
    const kinds = FAULT_KINDS.filter((kind) => options.kinds.includes(kind.id) && kind.topologies.includes(topology));
    if (kinds.length === 0) continue;
    log(`topology: ${topology}`);
    const harness: Harness = topology === 'cluster' ? await startClusterHarness() : await startEmbeddedHarness();
    const customers: string[] = [];
    try {
      for (const kind of kinds) {
        log(`fault: ${kind.fault} (${options.sessions} sessions)`);
        const orders = makeOrders(options.sessions);
        customers.push(...orders.flatMap((order) => [order.session.customerEmail!, order.session.customerName!]));
        const [played, window] = await Promise.all([playOrders(harness, orders, options.perSecond ?? 10), kind.inject(harness)]);
        const outcomes = await settle(harness, orders, options.settleTimeoutMs ?? 240_000);
        const row = countRow(topology, kind.fault, outcomes, played, window);
        rows.push(row);
        log(`  ${JSON.stringify(row)}`);
      }
    } finally {
      await harness.close();
    }
    const secrets = [...harness.secrets, ...customers];
    leaks.push(...harness.logLines.filter((line) => secrets.some((secret) => line.includes(secret))));
    stripeRateLimited += harness.emulator.rateLimited();
  }
  return { rows, stripeRateLimited, leaks };
}

export function faultTable(rows: FaultRow[]): string {
  return [
    '| topology | fault | sessions | fulfilled | lost | doubled | wrong | emails resent | non-2xx while up | recovery |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.topology} | ${r.fault} | ${r.tried} | ${r.fulfilled} | ${r.lost} | ${r.doubled} | ${r.wrong} | ${r.resent} | ${r.non2xxWhileUp} | ${r.recoverySeconds.toFixed(1)} s |`,
    ),
  ].join('\n');
}

export function failures(result: FaultRunResult): string[] {
  const problems = result.rows.flatMap((r) =>
    [
      r.lost > 0 && `${r.fault}: ${r.lost} lost`,
      r.doubled > 0 && `${r.fault}: ${r.doubled} doubled`,
      r.wrong > 0 && `${r.fault}: ${r.wrong} wrong`,
      r.non2xxWhileUp > 0 && `${r.fault}: ${r.non2xxWhileUp} non-2xx answers while everything was up`,
    ].filter((problem): problem is string => Boolean(problem)),
  );
  if (result.stripeRateLimited > 0) problems.push(`Stripe's read limit was hit ${result.stripeRateLimited} times`);
  if (result.leaks.length > 0) problems.push(`${result.leaks.length} log lines carry a secret or customer data, e.g. ${result.leaks[0]}`);
  return problems;
}

async function main(): Promise<void> {
  const sessions = Math.min(Math.max(Number(process.env.FAULTS_SESSIONS ?? 100), 1), 1000);
  const kinds = process.env.FAULTS_KINDS ? process.env.FAULTS_KINDS.split(',') : FAULT_KINDS.map((kind) => kind.id);
  const topologies = (process.env.FAULTS_TOPOLOGIES ?? 'cluster,embedded').split(',') as Topology[];
  if (topologies.some((t) => t !== 'cluster' && t !== 'embedded')) throw new Error('FAULTS_TOPOLOGIES: use cluster, embedded or both');
  const unknown = kinds.filter((id) => !FAULT_KINDS.some((kind) => kind.id === id));
  if (unknown.length > 0) throw new Error(`unknown fault kinds: ${unknown.join(', ')} (known: ${FAULT_KINDS.map((k) => k.id).join(', ')})`);
  const started = Date.now();
  const result = await runFaults({ sessions, kinds, topologies });
  const table = faultTable(result.rows);
  console.log(`\n${table}\n\nStripe read limit hits: ${result.stripeRateLimited}; log lines with secrets or customer data: ${result.leaks.length}`);
  const doc = fs.readFileSync(DOC, 'utf8');
  const [before, rest] = doc.split('<!-- fault-table:start -->');
  const after = rest?.split('<!-- fault-table:end -->')[1];
  if (before !== undefined && after !== undefined) {
    const stamp = `Last run: ${new Date().toISOString().slice(0, 10)}, \`npm run faults\` with ${sessions} sessions a fault, ${((Date.now() - started) / 60_000).toFixed(1)} min; Stripe read-limit hits: ${result.stripeRateLimited}; log lines with a secret or customer data: ${result.leaks.length}.`;
    fs.writeFileSync(DOC, `${before}<!-- fault-table:start -->\n${stamp}\n\n${table}\n<!-- fault-table:end -->${after}`);
  }
  const problems = failures(result);
  if (problems.length > 0) {
    console.error(`FAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    process.exit(1);
  }
  console.log('0 lost, 0 doubled, 0 wrong.');
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
