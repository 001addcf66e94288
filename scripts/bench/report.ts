/** docs/benchmarks.md's measured part: figures, ratios to the same run's baselines, and the targets. */
import fs from 'node:fs';
import os from 'node:os';
import type { Ack, BaselineResult, TopologyResult } from './run';
import { percentile } from './load';

export interface ReportInput {
  settings: { rates: number[]; windowS: number; burst: number; waiting: number; landing: number; inFlight: number };
  baselines: BaselineResult;
  results: TopologyResult[];
  startedAt: Date;
  finishedAt: Date;
  stripeLatencyMs: number;
  smtpLatencyMs: number;
  /** The product's Stripe request budget: its default for a test key (none is set). */
  stripeBudget: number;
  /** Stripe's limit the emulator enforces: test mode's, every request counted. */
  stripeLimit: number;
}

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

const ms = (value: number) => (Number.isFinite(value) ? `${value.toFixed(1)} ms` : 'n/a');
const times = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)} ×` : 'n/a');
const p = (acks: Ack[], rate: number, q: number) => percentile(acks.find((a) => a.rate === rate)?.latencies.ms ?? [], q);
const mark = (met: boolean) => (met ? 'met' : '**not met**');

/** The offered rate the engine sustains that the targets are judged at: 20 ev/s when measured, else the middle one. */
function judgedRate(rates: number[]): number {
  return rates.includes(20) ? 20 : rates[Math.floor(rates.length / 2)]!;
}

export function renderReport(input: ReportInput): string {
  const { settings, baselines, results } = input;
  const rate = judgedRate(settings.rates);
  const low = Math.min(...settings.rates);
  const cpu = os.cpus();
  const lines = [
    START,
    `Measured ${input.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${Math.round((input.finishedAt.getTime() - input.startedAt.getTime()) / 60_000)} min, with \`npm run bench\`.`,
    `Machine: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}.`,
    `Offered load: open loop at ${settings.rates.join(', ')} events/s for ${settings.windowS} s each; throughput bursts of ${settings.burst} sessions, ${settings.inFlight} deliveries in flight; ${settings.waiting} sessions waiting for a delayed payment; ${settings.landing} landing-page visits.`,
    `Stripe requests: the product at its default budget for a test key (${input.stripeBudget}/s, none set), the emulator enforcing ${input.stripeLimit}/s on every request (Stripe's test-mode limit). Baseline B's realistic latencies: Stripe ${input.stripeLatencyMs} ms, SMTP ${input.smtpLatencyMs} ms.`,
    '',
  ];

  for (const r of results) {
    const ackP99 = p(r.product, rate, 99);
    const floorP99 = p(r.floor, rate, 99);
    const overhead = p(r.product, low, 50) - p(r.floor, low, 50);
    const naiveP99 = p(baselines.naiveRealistic, rate, 99);
    const landingP95 = percentile(r.landingMs, 95);
    const throughputRatio = r.productThroughput.perSecond / r.minimal.perSecond;
    const waitingRatio = r.waiting.rssMb / r.idleRssMb;
    const trips = (t: { workflowTasks: number; activityTasks: number }) =>
      `${(t.workflowTasks + t.activityTasks).toFixed(1)} (${t.workflowTasks.toFixed(1)} workflow + ${t.activityTasks.toFixed(1)} activity tasks)`;
    const memoryLabel = r.topology === 'embedded' ? 'the all-in-one process' : `the ${r.topology} topology's worker processes together`;
    lines.push(
      `### ${r.topology === 'embedded' ? 'Embedded default (`npm start`: dev server on SQLite, PGlite, one process)' : 'Production topology (`npm run cluster`: Temporal 1.29.1 on PostgreSQL, 2 workers, 2 ingress behind HAProxy)'}`,
      '',
      '| measure | product | same-run reference | ratio | target | |',
      '|---|---|---|---|---|---|',
      `| end-to-end paid sessions/s | ${r.productThroughput.perSecond.toFixed(1)}/s | minimal one-activity workflow ${r.minimal.perSecond.toFixed(1)}/s | ${times(throughputRatio)} | ≥ 0.6 × | ${mark(throughputRatio >= 0.6)} |`,
      `| ack p99 at ${rate} ev/s, workers fulfilling | ${ms(ackP99)} | bare signal-with-start p99 ${ms(floorP99)} (idle server) | ${times(ackP99 / floorP99)} | ≤ 2 × | ${mark(ackP99 / floorP99 <= 2)} |`,
      `| the same, against the engine under that load | ${ms(ackP99)} | bare signal-with-start p99 ${ms(p(r.loadedFloor, rate, 99))} (probe during the product's load) | ${times(ackP99 / p(r.loadedFloor, rate, 99))} | (diagnostic) | |`,
      `| ack overhead at ${low} ev/s (p50) | ${ms(p(r.product, low, 50))} | bare signal-with-start p50 ${ms(p(r.floor, low, 50))} | +${ms(overhead)} | < 3 ms | ${mark(overhead < 3)} |`,
      `| ack p99 at ${rate} ev/s vs the naive handler | ${ms(ackP99)} | baseline B p99 ${ms(naiveP99)} | ${times(ackP99 / naiveP99)} | ≤ 0.25 × | ${mark(ackP99 / naiveP99 <= 0.25)} |`,
      `| landing page, 2xx to outcome shown (p95) | ${ms(landingP95)} | | | < 1000 ms | ${mark(landingP95 < 1000)} |`,
      `| Stripe requests during the burst and its refunds (peak/s) | ${r.stripeRequests.peakPerSecond}/s of ${r.stripeRequests.total} HTTP requests (${r.stripeRequests.sessionsWithManyItems} sessions of 150 line items, ${r.stripeRequests.refunds} refunds${r.stripeRequests.refundsSettled ? '' : ', **not all settled**'}), ${r.stripeRequests.answered429} answered 429 | budget ${input.stripeBudget}/s, Stripe's test-mode limit ${input.stripeLimit}/s | | ≤ ${input.stripeLimit}/s, no 429 | ${mark(r.stripeRequests.peakPerSecond <= input.stripeLimit && r.stripeRequests.answered429 === 0 && r.stripeRequests.refundsSettled)} |`,
      `| idle RSS of ${memoryLabel} | ${r.idleRssMb.toFixed(0)} MB | | | ${r.topology === 'embedded' ? '< 400 MB' : '(informational)'} | ${r.topology === 'embedded' ? mark(r.idleRssMb < 400) : ''} |`,
      `| RSS with ${r.waiting.sessions} sessions waiting | ${r.waiting.rssMb.toFixed(0)} MB | idle at start ${r.idleRssMb.toFixed(0)} MB | ${times(waitingRatio)} | ≤ 1.25 × | ${mark(waitingRatio <= 1.25)} |`,
      `| the same, against the process warm from the earlier phases | ${r.waiting.rssMb.toFixed(0)} MB | warm idle ${r.waiting.warmIdleRssMb.toFixed(0)} MB | ${times(r.waiting.rssMb / r.waiting.warmIdleRssMb)} | ≤ 1.25 × | ${mark(r.waiting.rssMb / r.waiting.warmIdleRssMb <= 1.25)} |`,
      `| memory against how many wait: all of them vs a tenth | ${r.waiting.rssMb.toFixed(0)} MB | ${Math.ceil(r.waiting.sessions / 10)} waiting: ${r.waiting.tenthRssMb.toFixed(0)} MB | ${times(r.waiting.rssMb / r.waiting.tenthRssMb)} | ≈ 1 × (bounded cache) | |`,
      `| settling those ${r.waiting.sessions} as a burst | ${r.waiting.settleSeconds.toFixed(0)} s (${(r.waiting.sessions / r.waiting.settleSeconds).toFixed(1)}/s) | | | all settled, exactly once | ${mark(r.waiting.settled)} |`,
      `| server round trips per paid session | ${trips(r.productThroughput.roundTrips)} | minimal workflow ${trips(r.minimal.roundTrips)} | ${times((r.productThroughput.roundTrips.workflowTasks + r.productThroughput.roundTrips.activityTasks) / (r.minimal.roundTrips.workflowTasks + r.minimal.roundTrips.activityTasks))} | | |`,
      `| exactly once | ${r.exactlyOnce.fulfilledOnce}/${r.exactlyOnce.sessions} fulfilled once, ${r.exactlyOnce.receiptsOnce}/${r.exactlyOnce.sessions} one receipt; ${r.duplicatesAcked.ok}/${r.duplicatesAcked.total} redeliveries acknowledged (${r.duplicatesAcked.alreadySettled} already settled) | | | all | ${mark(r.exactlyOnce.fulfilledOnce === r.exactlyOnce.sessions && r.exactlyOnce.receiptsOnce === r.exactlyOnce.sessions && r.duplicatesAcked.ok === r.duplicatesAcked.total)} |`,
      '',
      'Acknowledgement latency, p50 / p99, by offered rate (A and B are the same for both topologies, measured once per run):',
      '',
      `| offered | A verify only | B naive, realistic | B naive, zero latency | C bare signal-with-start, idle | bare signal-with-start during the product's load (a 2/s probe) | product |`,
      '|---|---|---|---|---|---|---|',
      ...settings.rates.map((rt) => {
        const cell = (acks: Ack[]) => {
          const failed = acks.find((a) => a.rate === rt)?.latencies.failed ?? 0;
          return `${ms(p(acks, rt, 50))} / ${ms(p(acks, rt, 99))}${failed ? ` (${failed} failed)` : ''}`;
        };
        return `| ${rt} ev/s | ${cell(baselines.verify)} | ${cell(baselines.naiveRealistic)} | ${cell(baselines.naiveZero)} | ${cell(r.floor)} | ${cell(r.loadedFloor)} | ${cell(r.product)} |`;
      }),
      '',
    );
    if (r.serverRssMb !== undefined) lines.push(`The embedded Temporal dev server (its own process) held ${r.serverRssMb.toFixed(0)} MB at idle.`, '');
    if (r.memory) {
      lines.push('Where the all-in-one process\'s memory goes (each part loaded in turn in a fresh process):', '', '| part | adds | RSS after |', '|---|---|---|');
      for (const step of r.memory) lines.push(`| ${step.step} | ${step.addedMb.toFixed(0)} MB | ${step.rssMb.toFixed(0)} MB |`);
      lines.push('');
    }
    if (r.exactlyOnce.problems.length > 0) lines.push(`Problems: ${r.exactlyOnce.problems.join('; ')}`, '');
  }
  lines.push(END);
  return lines.join('\n');
}

/** Replaces the measured part of the document, keeping the prose around it. */
export function writeReport(file: string, report: string): void {
  const existing = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : `# Benchmarks\n\n${START}\n${END}\n`;
  const start = existing.indexOf(START);
  const end = existing.indexOf(END);
  const next = start >= 0 && end > start ? existing.slice(0, start) + report + existing.slice(end + END.length) : `${existing}\n${report}\n`;
  fs.writeFileSync(file, next);
}
