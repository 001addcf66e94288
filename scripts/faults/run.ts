/**
 * `npm run faults`: the fault suite. Starts the production topology (as `npm run cluster`) and
 * then the embedded default (as `npm start`), and on each, for each fault kind that applies there,
 * plays FAULTS_SESSIONS orders (default 100; the kind's mix: Checkout cards and delayed payments
 * that succeed and that fail, or orders paid by PaymentIntent, captured at once or authorized and
 * captured later, refunded before or during fulfillment) through the proxy with a sender that
 * redelivers like Stripe, injects the fault mid-burst, waits (bounded) for every order to settle,
 * and counts: fulfilled, refunded, lost, doubled, wrong, emails resent, non-2xx answers while
 * everything was up, and the time to recover. Writes the rows it ran into docs/reliability.md's
 * table (rows it did not run keep their figures and their run's line) and exits non-zero when
 * anything was lost, doubled or wrong, a non-2xx came while everything was up, Stripe's read
 * limit was hit, or a secret or a customer's data reached a log.
 *   FAULTS_KINDS=temporal-kill,smtp-down   only these kinds
 *   FAULTS_TOPOLOGIES=cluster               only this topology (cluster, embedded)
 *   FAULTS_SESSIONS=100                     orders a fault (1..1000)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { FAULT_KINDS } from './kinds';
import { startClusterHarness, startEmbeddedHarness, STRIPE_READ_LIMIT, type Harness, type Topology } from './harness';
import { countRow, makeOrders, playOrders, settle, type FaultRow, type Order } from './orders';

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
        log(`fault: ${kind.fault} (${options.sessions} orders, ${kind.mix ?? 'checkout'} mix)`);
        const orders = makeOrders(options.sessions, kind.mix);
        customers.push(...orders.flatMap((order) => [order.contact.email, order.contact.name]));
        const before = { requests: harness.emulator.requests.length, rateLimited: harness.emulator.rateLimited(), logLines: harness.logLines.length };
        const [played, window] = await Promise.all([playOrders(harness, orders, options.perSecond ?? 10), kind.inject(harness)]);
        const outcomes = await settle(harness, orders, options.settleTimeoutMs ?? 240_000);
        const row = countRow(topology, kind.fault, outcomes, played, window);
        rows.push(row);
        for (const line of await evidence(harness, orders, row, before)) log(`  ${line}`);
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

const COLUMNS = ['topology', 'fault', 'sessions', 'fulfilled', 'refunded', 'lost', 'doubled', 'wrong', 'emails resent', 'non-2xx while up', 'recovery'];

const cells = (r: FaultRow) => [
  r.topology,
  r.fault,
  r.tried,
  r.fulfilled,
  r.refunded,
  r.lost,
  r.doubled,
  r.wrong,
  r.resent,
  r.non2xxWhileUp,
  `${r.recoverySeconds.toFixed(1)} s`,
].map(String);

const tableLine = (values: string[]) => `| ${values.join(' | ')} |`;

/**
 * What a row's log says besides its counts: which path each kind took, what Stripe saw of captures
 * and releases, which calls went over Stripe's read limit (the emulator's token bucket replayed over
 * the request times), and each problem, naming the order; the log lines of orders with a problem
 * are written to a file for whoever looks into it.
 */
async function evidence(harness: Harness, orders: Order[], row: FaultRow, before: { requests: number; rateLimited: number; logLines: number }): Promise<string[]> {
  const lines = [`${JSON.stringify({ ...row, problems: undefined, paths: undefined })}`, `paths: ${JSON.stringify(row.paths)}`];
  const { requests, requestTimes } = harness.emulator;
  const ids = new Set(orders.map((order) => order.id));
  const calls = (action: string) => requests.slice(before.requests).filter((request) => ids.has(new RegExp(`^POST /v1/payment_intents/([^/?]+)/${action}`).exec(request)?.[1] ?? '')).length;
  const rowLog = harness.logLines.slice(before.logLines);
  if (calls('capture') + calls('cancel') > 0) {
    const notReleased = rowLog.filter((line) => line.includes('Not released: Stripe had captured the payment')).length;
    lines.push(`Stripe saw ${calls('capture')} capture and ${calls('cancel')} cancel calls; ${notReleased} log lines of a release that found the payment captured (and fulfilled instead)`);
  }
  const refusedNow = harness.emulator.rateLimited() - before.rateLimited;
  if (refusedNow > 0) {
    const refused: Record<string, number> = {};
    const shape = (request: string) => request.replace(/\?.*$/, '').replace(/\/(cs|pi|re|dp|evt|ch)_[A-Za-z0-9_]+/g, '/$1_…');
    const bucket = { tokens: STRIPE_READ_LIMIT, at: requestTimes[0] ?? 0 };
    requestTimes.forEach((at, i) => {
      bucket.tokens = Math.min(STRIPE_READ_LIMIT, bucket.tokens + ((at - bucket.at) / 1000) * STRIPE_READ_LIMIT);
      bucket.at = at;
      if (bucket.tokens >= 1) return void (bucket.tokens -= 1);
      if (i < before.requests) return;
      const call = shape(requests[i]!);
      refused[call] = (refused[call] ?? 0) + 1;
    });
    lines.push(`Stripe refused ${refusedNow} calls over its read limit of ${STRIPE_READ_LIMIT}/s; by replaying its bucket: ${JSON.stringify(refused)}`);
    // The busiest second of the row, and what it was made of.
    let busiest = { from: before.requests, to: before.requests };
    for (let from = before.requests, to = before.requests; to < requestTimes.length; to++) {
      while (requestTimes[to]! - requestTimes[from]! >= 1000) from++;
      if (to - from > busiest.to - busiest.from) busiest = { from, to };
    }
    const made: Record<string, number> = {};
    for (let i = busiest.from; i <= busiest.to; i++) made[shape(requests[i]!)] = (made[shape(requests[i]!)] ?? 0) + 1;
    lines.push(`its busiest second (${new Date(requestTimes[busiest.from]!).toISOString()}): ${busiest.to - busiest.from + 1} calls, ${JSON.stringify(made)}`);
  }
  lines.push(...row.problems);
  const troubled = [...new Set(row.problems.flatMap((problem) => /\b(pi|cs_test)_[A-Za-z0-9]+/.exec(problem)?.[0] ?? []))];
  if (troubled.length > 0) {
    const file = path.join(os.tmpdir(), `faults-${row.topology}-${Date.now()}.log`);
    const histories = await Promise.all(troubled.map((id) => historyOf(harness, id)));
    const entries = logEntries(rowLog).filter((entry) => troubled.some((id) => entry.includes(id)));
    fs.writeFileSync(file, [...histories, '', 'Log entries naming them:', ...entries].join('\n'));
    lines.push(`histories and log entries of ${troubled.join(', ')}: ${file}`);
  }
  return lines;
}

/** The order's workflow history (its latest run), one line an event: when, what, which activity or signal. */
async function historyOf(harness: Harness, id: string): Promise<string> {
  try {
    const history = await harness.client.workflow.getHandle(id).fetchHistory();
    const timeOf = (event: temporal.api.history.v1.IHistoryEvent) => Number(event.eventTime?.seconds ?? 0) * 1000 + Math.floor((event.eventTime?.nanos ?? 0) / 1e6);
    const first = history.events?.[0] ? timeOf(history.events[0]) : 0;
    const events = (history.events ?? []).map((event) => {
      const at = timeOf(event);
      const what = temporal.api.enums.v1.EventType[event.eventType ?? 0]?.replace(/^EVENT_TYPE_/, '') ?? String(event.eventType);
      const detail =
        event.activityTaskScheduledEventAttributes?.activityType?.name ??
        event.workflowExecutionSignaledEventAttributes?.signalName ??
        event.markerRecordedEventAttributes?.markerName ??
        '';
      return `  +${((at - first) / 1000).toFixed(3)} s ${what} ${detail}`.trimEnd();
    });
    return [`${id}: workflow history (latest run), from ${new Date(first).toISOString()}`, ...events].join('\n');
  } catch (err) {
    return `${id}: no history (${String(err)})`;
  }
}

/** Log lines grouped into entries: a worker's multi-line objects stay with the line that began them. */
function logEntries(logLines: string[]): string[] {
  const entries: string[] = [];
  const open = new Map<string, number>();
  for (const line of logLines) {
    const source = /^\[[^\]]+\] /.exec(line)?.[0] ?? '';
    const body = line.slice(source.length);
    const at = open.get(source);
    if (at !== undefined && /^(\s|\}|\])/.test(body)) entries[at] += `\n${line}`;
    else open.set(source, entries.push(line) - 1);
  }
  return entries;
}

export function faultTable(rows: FaultRow[]): string {
  return [tableLine(COLUMNS), `|${COLUMNS.map(() => '---').join('|')}|`, ...rows.map((r) => tableLine(cells(r)))].join('\n');
}

/**
 * The table block with this run's rows in place of the same (topology, fault) rows, and every other
 * row of a current fault kind kept as it was (a column it lacks, such as `refunded` before refunds
 * were played, is 0: it played none). Rows follow the topology, then the kinds' order. `stamp` is
 * this run's line; a run of every kind on every topology replaces the earlier lines, a partial run
 * goes first and keeps them (each says which rows it produced).
 */
export function mergeFaultBlock(previous: string, rows: FaultRow[], stamp: string, full: boolean): string {
  const lines = previous.split('\n').map((line) => line.trim());
  const tableAt = lines.findIndex((line) => line.startsWith('|'));
  const oldStamps = (tableAt < 0 ? lines : lines.slice(0, tableAt))
    .filter((line) => line.length > 0 && !line.startsWith('Runs that produced'))
    .map((line) => (line.startsWith('- ') ? line : `- ${line.replace(/^Last run: /, '')}`));
  const parse = (line: string) => line.replace(/^\|/, '').replace(/\|$/, '').split(' | ').map((cell) => cell.trim());
  const header = tableAt < 0 ? [] : parse(lines[tableAt]!);
  const old = tableAt < 0 ? [] : lines.slice(tableAt + 2).filter((line) => line.startsWith('|')).map(parse);
  const byKey = new Map<string, string[]>();
  for (const values of old) {
    const named = new Map(header.map((column, i) => [column, values[i]!]));
    byKey.set(`${named.get('topology')}|${named.get('fault')}`, COLUMNS.map((column) => named.get(column) ?? '0'));
  }
  for (const row of rows) byKey.set(`${row.topology}|${row.fault}`, cells(row));
  const ordered = (['cluster', 'embedded'] as Topology[]).flatMap((topology) =>
    FAULT_KINDS.flatMap((kind) => {
      const values = byKey.get(`${topology}|${kind.fault}`);
      return values ? [values] : [];
    }),
  );
  const table = [tableLine(COLUMNS), `|${COLUMNS.map(() => '---').join('|')}|`, ...ordered.map(tableLine)].join('\n');
  // A rerun of the same command replaces its earlier line.
  const command = /`[^`]+`/.exec(stamp)?.[0];
  const kept = oldStamps.filter((line) => !command || !line.includes(command));
  const stamps = full ? stamp : ['Runs that produced the rows below, newest first:', '', `- ${stamp}`, ...kept].join('\n');
  return `\n${stamps}\n\n${table}\n`;
}

export function failures(result: FaultRunResult): string[] {
  const problems = result.rows.flatMap((r) =>
    [
      r.lost > 0 && `${r.fault}: ${r.lost} lost`,
      r.doubled > 0 && `${r.fault}: ${r.doubled} doubled`,
      r.wrong > 0 && `${r.fault}: ${r.wrong} wrong`,
      r.non2xxWhileUp > 0 && `${r.fault}: ${r.non2xxWhileUp} non-2xx answers while everything was up`,
      ...r.problems.slice(0, 10).map((problem) => `${r.topology}, ${r.fault}: ${problem}`),
    ].filter((problem): problem is string => Boolean(problem)),
  );
  if (result.stripeRateLimited > 0) problems.push(`Stripe's read limit was hit ${result.stripeRateLimited} times`);
  if (result.leaks.length > 0) problems.push(`${result.leaks.length} log lines carry a secret or customer data, e.g. ${result.leaks[0]}`);
  return problems;
}

function usage(): string {
  const kinds = FAULT_KINDS.map((kind) => `  ${kind.id.padEnd(24)} ${kind.topologies.join(', ').padEnd(18)} ${kind.fault}`).join('\n');
  return `npm run faults: plays orders through faults and counts what was lost, doubled or wrong; rewrites docs/reliability.md's fault table.

  FAULTS_KINDS=a,b        only these kinds (default: all)
  FAULTS_TOPOLOGIES=x,y   only these topologies: cluster, embedded (default: both)
  FAULTS_SESSIONS=n       orders a fault, 1..1000 (default 100)

kinds (id, topologies, row):
${kinds}
`;
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(usage());
    return;
  }
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
  const [block, after] = rest?.split('<!-- fault-table:end -->') ?? [];
  if (before !== undefined && block !== undefined && after !== undefined) {
    const full = topologies.includes('cluster') && topologies.includes('embedded') && FAULT_KINDS.every((kind) => kinds.includes(kind.id));
    const env = [
      process.env.FAULTS_KINDS && `FAULTS_KINDS=${process.env.FAULTS_KINDS}`,
      process.env.FAULTS_TOPOLOGIES && `FAULTS_TOPOLOGIES=${process.env.FAULTS_TOPOLOGIES}`,
      process.env.FAULTS_SESSIONS && `FAULTS_SESSIONS=${process.env.FAULTS_SESSIONS}`,
    ].filter(Boolean);
    const command = [...env, 'npm run faults'].join(' ');
    const cpus = os.cpus();
    const machine = `${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores`;
    const ran = full ? '' : `: the ${result.rows.length} rows of ${kinds.join(', ')} (${topologies.join(', ')})`;
    const stamp = `${full ? 'Last run: ' : ''}${new Date().toISOString().slice(0, 10)} on ${machine}, \`${command}\` with ${sessions} sessions a fault, ${((Date.now() - started) / 60_000).toFixed(1)} min${ran}; Stripe read-limit hits: ${result.stripeRateLimited}; log lines with a secret or customer data: ${result.leaks.length}.`;
    fs.writeFileSync(DOC, `${before}<!-- fault-table:start -->${mergeFaultBlock(block, result.rows, stamp, full)}<!-- fault-table:end -->${after}`);
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
