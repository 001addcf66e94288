import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { checkWorld, INVARIANTS, type Invariant, type Violation } from './oracle';
import { runWorld, withTimeout, workerHealth, WORLD_DEADLINE_MS, WorldTimedOut, type Explorer, type WorldOutcome } from './run-world';
import { sizeOf, worldArb, type World } from './world';

export interface ExploreOptions {
  /** Worlds to run at most. */
  count: number;
  /** Time budget: no new world starts after it (shrinking a counterexample may run past it). */
  seconds?: number;
  seed?: number;
  /** fast-check's path of one world in the batch of `seed`: replays that search exactly. */
  path?: string;
  /** A file where a long run keeps its progress after each batch: run again with it to resume. */
  progressFile?: string;
  /** How long shrinking a counterexample may take; past it, the smallest world found so far is reported. */
  shrinkSeconds?: number;
  /** One of several explorers sharing the run: this one takes batches index, index + of, index + 2 of, ... */
  worker?: { index: number; of: number };
  /** Called after each batch (a long run's progress line). */
  onBatch?: (report: ExploreReport) => void;
}

type Stats = Record<'worlds' | 'orders' | 'changes' | 'deliveries' | 'visitsSkipped' | 'faults' | 'operatorActions' | 'reconciles' | 'fulfilled', number>;

export interface ExploreReport extends Stats {
  seed: number;
  /** Batches of BATCH worlds run so far (batch k's seed is seed + k; with workers, see ExploreOptions.worker). */
  batches: number;
  violations: Record<Invariant, number>;
  /** Time spent exploring (not shrinking), over every session of a resumed run. */
  elapsedMs: number;
  worldsPerMinute: number;
  /** The smallest failing world found, with what broke and how to replay it. */
  counterexample?: {
    world: World;
    violations: Violation[];
    /** What the world first found broke, before shrinking. */
    firstViolations: Violation[];
    /** Its batch's seed and fast-check path. */
    seed: number;
    path: string;
    size: ReturnType<typeof sizeOf>;
    worldsUntilFound: number;
    secondsUntilFound: number;
  };
  /** A failure that was no violation (the harness broke): its message. */
  error?: string;
}

/** Worlds per fast-check run: a long run is a sequence of such batches, so it can stop and resume between them. */
export const BATCH = 100;

class WorldViolated extends Error {
  constructor(readonly violations: Violation[]) {
    super(violations.map((v) => `${v.invariant} (order ${v.order}, ${v.id}): ${v.detail}`).join('\n'));
  }
}

const emptyStats = (): Stats => ({ worlds: 0, orders: 0, changes: 0, deliveries: 0, visitsSkipped: 0, faults: 0, operatorActions: 0, reconciles: 0, fulfilled: 0 });

/**
 * Runs worlds on `explorer` until the count or the time budget, in batches; on a violation,
 * fast-check shrinks it (within `shrinkSeconds`) and the run stops there.
 */
export async function exploreWorlds(explorer: Explorer, options: ExploreOptions): Promise<ExploreReport> {
  const resumed = options.progressFile && fs.existsSync(options.progressFile) ? (JSON.parse(fs.readFileSync(options.progressFile, 'utf8')) as ExploreReport) : null;
  if (resumed && options.seed !== undefined && options.seed !== resumed.seed) throw new Error(`${options.progressFile} holds a run of seed ${resumed.seed}, not ${options.seed}`);
  const report: ExploreReport = resumed ?? {
    seed: options.seed ?? (Date.now() ^ (Math.random() * 0x100000000)) >>> 0,
    batches: 0,
    ...emptyStats(),
    violations: Object.fromEntries(INVARIANTS.map((name) => [name, 0])) as Record<Invariant, number>,
    elapsedMs: 0,
    worldsPerMinute: 0,
  };
  if (report.counterexample) return report; // that run already ended on a violation
  const deadline = options.seconds === undefined ? Infinity : Date.now() + options.seconds * 1000;
  while (report.worlds < options.count && Date.now() < deadline && !report.counterexample && !report.error) {
    const { index, of } = options.worker ?? { index: 0, of: 1 };
    const batchSeed = report.seed + index + of * report.batches;
    const size = options.path ? 1 : Math.min(BATCH, options.count - report.worlds);
    await runBatch(explorer, report, { seed: batchSeed, count: size, path: options.path, deadline, shrinkMs: (options.shrinkSeconds ?? 300) * 1000 });
    report.batches++;
    report.worldsPerMinute = report.worlds / (Math.max(1, report.elapsedMs) / 60_000);
    if (options.progressFile) fs.writeFileSync(options.progressFile, JSON.stringify(report, null, 2));
    options.onBatch?.(report);
    if (options.path) break;
  }
  return report;
}

async function runBatch(explorer: Explorer, report: ExploreReport, batch: { seed: number; count: number; path?: string; deadline: number; shrinkMs: number }): Promise<void> {
  let shrinkingSince: number | null = null;
  let smallest: Violation[] = [];
  let first: Violation[] = [];
  let exploring = Date.now();

  const property = fc.asyncProperty(worldArb, async (world) => {
    // Past the shrink budget, every further candidate "passes" unrun: fast-check then reports the smallest failure so far.
    if (shrinkingSince !== null && Date.now() - shrinkingSince > batch.shrinkMs) return;
    let outcome: Awaited<ReturnType<typeof boundedRun>>;
    try {
      outcome = await boundedRun(explorer, world);
    } catch (err) {
      // The harness broke: fast-check shrinks that too, within the same budget (not one replay after another, unbounded).
      shrinkingSince ??= Date.now();
      throw err;
    }
    const found = withHealth(explorer, outcome instanceof WorldTimedOut ? [timedOut(outcome)] : checkWorld(outcome));
    keepDump(found.length > 0);
    // The table counts the worlds explored, not the replays fast-check runs while shrinking.
    if (shrinkingSince === null) {
      report.worlds++;
      if (!(outcome instanceof WorldTimedOut)) count(report, outcome);
      for (const v of found) report.violations[v.invariant]++;
      report.elapsedMs += Date.now() - exploring;
      exploring = Date.now();
    }
    if (found.length > 0) {
      if (shrinkingSince === null) first = found;
      shrinkingSince ??= Date.now();
      smallest = found;
      throw new WorldViolated(found);
    }
  });

  const details = await fc.check(property, {
    numRuns: batch.count,
    seed: batch.seed,
    path: batch.path,
    endOnFailure: false, // shrink: the smallest story that still breaks is the one worth reading
    interruptAfterTimeLimit: Number.isFinite(batch.deadline) ? Math.max(1, batch.deadline - Date.now()) : undefined,
    markInterruptAsFailure: false,
  });
  if (details.failed && details.counterexample) {
    const [world] = details.counterexample;
    const found = details.errorInstance instanceof WorldViolated;
    if (!found) report.error = String((details.errorInstance as Error | undefined)?.stack ?? details.errorInstance);
    report.counterexample = {
      world,
      violations: found ? smallest : [],
      firstViolations: first,
      seed: batch.seed,
      path: details.counterexamplePath ?? '',
      size: sizeOf(world),
      worldsUntilFound: report.worlds,
      secondsUntilFound: Math.round(report.elapsedMs / 1000),
    };
  }
}

function count(report: ExploreReport, outcome: WorldOutcome): void {
  report.orders += outcome.orders.length;
  report.changes += outcome.orders.reduce((sum, o) => sum + o.changes.length - 1, 0);
  report.deliveries += outcome.deliveries;
  report.visitsSkipped += outcome.visitsSkipped;
  report.faults += outcome.faults;
  report.operatorActions += outcome.operatorActions;
  report.reconciles += outcome.reconciles;
  report.fulfilled += outcome.orders.filter((o) => o.status === 'fulfilled').length;
}

/** Runs one world as it is written (a regression world, or a counterexample saved as JSON): its violations. */
export async function checkOneWorld(explorer: Explorer, world: World): Promise<Violation[]> {
  const outcome = await boundedRun(explorer, world);
  return withHealth(explorer, outcome instanceof WorldTimedOut ? [timedOut(outcome)] : checkWorld(outcome));
}

/** A world that did not come to rest carries what the workers were doing at its end. */
function withHealth(explorer: Explorer, violations: Violation[]): Violation[] {
  if (!violations.some((v) => v.invariant === 'at_rest')) return violations;
  const health = workerHealth(explorer);
  return violations.map((v) => (v.invariant === 'at_rest' ? { ...v, detail: `${v.detail} (${health})` } : v));
}

/**
 * A world bounded in real time: its own steps check their deadline, and a step that hangs (a
 * server that never answers) is given up a minute later. Either way the world counts as not at rest.
 */
async function boundedRun(explorer: Explorer, world: World): Promise<WorldOutcome | WorldTimedOut> {
  const hung = new WorldTimedOut(`a step hung past the world's ${WORLD_DEADLINE_MS / 1000} s`);
  try {
    return await withTimeout(runWorld(explorer, world), WORLD_DEADLINE_MS + 60_000, hung);
  } catch (err) {
    if (err === hung) hung.message += `: ${await whereItHung(explorer)}`;
    if (err instanceof WorldTimedOut) return err;
    throw err;
  }
}

/** Where a hung world waits, and whether the test server still answers and its clock moves. */
async function whereItHung(explorer: Explorer): Promise<string> {
  const { label, since } = explorer.doing;
  const clock = () => withTimeout(explorer.env.currentTimeMs(), 5_000).then(String, (err: Error) => `no answer (${err.message})`);
  const first = await clock();
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  return `awaiting ${label} for ${Math.round((Date.now() - since) / 1000)} s; the test server's time ${first}, 2 s later ${await clock()}`;
}

const timedOut = (err: WorldTimedOut): Violation => ({ invariant: 'at_rest', order: -1, id: '', detail: err.message });

/** The reports of explorers that shared one run, as one: counts add up, time is the longest one's (they ran side by side). */
export function mergeReports(reports: ExploreReport[]): ExploreReport {
  const merged: ExploreReport = { ...reports[0]!, batches: 0, ...emptyStats(), violations: Object.fromEntries(INVARIANTS.map((name) => [name, 0])) as Record<Invariant, number>, elapsedMs: 0 };
  delete merged.counterexample;
  for (const report of reports) {
    merged.batches += report.batches;
    for (const key of Object.keys(emptyStats()) as (keyof Stats)[]) merged[key] += report[key];
    for (const name of INVARIANTS) merged.violations[name] += report.violations[name];
    merged.elapsedMs = Math.max(merged.elapsedMs, report.elapsedMs);
    merged.counterexample ??= report.counterexample;
    merged.error ??= report.error;
  }
  merged.worldsPerMinute = merged.worlds / (Math.max(1, merged.elapsedMs) / 60_000);
  return merged;
}

/** The report as a table, and a failing world with the one command that replays it. */
export function formatReport(report: ExploreReport): string {
  const rows: [string, string | number][] = [
    ['seed', report.seed],
    ['batches', report.batches],
    ['worlds', report.worlds],
    ['orders', report.orders],
    ['Stripe changes', report.changes],
    ['deliveries', report.deliveries],
    ['visits refused (429)', report.visitsSkipped],
    ['faults', report.faults],
    ['operator actions', report.operatorActions],
    ['reconciler runs', report.reconciles],
    ['orders fulfilled', report.fulfilled],
    ...INVARIANTS.map((name): [string, number] => [`violations: ${name}`, report.violations[name]]),
    ['seconds', (report.elapsedMs / 1000).toFixed(1)],
    ['worlds per minute', report.worldsPerMinute.toFixed(1)],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`);
  const example = report.counterexample;
  if (example) {
    lines.push('', report.error ? 'The harness failed on this world:' : `Violated after ${example.worldsUntilFound} worlds (${example.secondsUntilFound} s); shrunk to:`);
    lines.push(JSON.stringify(example.world, null, 2));
    lines.push(`size: ${example.size.orders} orders, ${example.size.steps} steps, ${example.size.deliveries} deliveries`);
    for (const v of example.violations) lines.push(`  ${v.invariant} (order ${v.order}): ${v.detail}`);
    lines.push('as first found, before shrinking:');
    for (const v of example.firstViolations) lines.push(`  ${v.invariant} (order ${v.order}): ${v.detail}`);
    if (report.error) lines.push(report.error);
    lines.push('', `replay this world: npm run explore -- --world '${JSON.stringify(example.world)}'`);
    lines.push(`replay the search: npm run explore -- --seed ${example.seed} --path ${example.path}`);
  }
  return lines.join('\n');
}

/** Debugging (EXPLORE_DUMP=dir): the histories of a world that broke an invariant are kept, numbered, beside the world. */
function keepDump(violated: boolean): void {
  const dir = process.env.EXPLORE_DUMP;
  if (!dir || !violated || !fs.existsSync(path.join(dir, 'latest'))) return;
  fs.renameSync(path.join(dir, 'latest'), path.join(dir, `violation-${Date.now()}`));
}
