import fc from 'fast-check';
import { checkWorld, INVARIANTS, type Invariant, type Violation } from './oracle';
import { runWorld, type Explorer } from './run-world';
import { sizeOf, worldArb, type World } from './world';

export interface ExploreOptions {
  /** Worlds to run at most. */
  count: number;
  /** Time budget: no new world starts after it (shrinking a counterexample may run past it). */
  seconds?: number;
  seed?: number;
  /** fast-check's path of one world: replays exactly that world with `seed`. */
  path?: string;
}

export interface ExploreReport {
  seed: number;
  worlds: number;
  orders: number;
  deliveries: number;
  visitsSkipped: number;
  /** Orders fulfilled (a sign the worlds did something). */
  fulfilled: number;
  violations: Record<Invariant, number>;
  elapsedMs: number;
  worldsPerMinute: number;
  /** The smallest failing world fast-check found, with what broke and how to replay it. */
  counterexample?: { world: World; violations: Violation[]; path: string; size: ReturnType<typeof sizeOf>; worldsUntilFound: number };
  /** A failure that was no violation (the harness broke): its message. */
  error?: string;
}

class WorldViolated extends Error {
  constructor(readonly violations: Violation[]) {
    super(violations.map((v) => `${v.invariant} (order ${v.order}, ${v.sessionId}): ${v.detail}`).join('\n'));
  }
}

/** Runs worlds on `explorer` until the count or the time budget; on a violation, fast-check shrinks it. */
export async function exploreWorlds(explorer: Explorer, options: ExploreOptions): Promise<ExploreReport> {
  const seed = options.seed ?? Date.now() ^ (Math.random() * 0x100000000);
  const violations = Object.fromEntries(INVARIANTS.map((name) => [name, 0])) as Record<Invariant, number>;
  const stats = { worlds: 0, orders: 0, deliveries: 0, visitsSkipped: 0, fulfilled: 0 };
  let shrinking = false;
  let worldsUntilFound = 0;
  let smallest: Violation[] = [];
  const started = Date.now();
  let exploredUntil = started; // when the last explored world ended: shrinking is not exploring

  const property = fc.asyncProperty(worldArb, async (world) => {
    const outcome = await runWorld(explorer, world);
    const found = checkWorld(outcome);
    // The table counts the worlds explored, not the replays fast-check runs while shrinking.
    if (!shrinking) {
      stats.worlds++;
      stats.orders += outcome.orders.length;
      stats.deliveries += outcome.deliveries;
      stats.visitsSkipped += outcome.visitsSkipped;
      stats.fulfilled += outcome.orders.filter((o) => o.status === 'fulfilled').length;
      for (const v of found) violations[v.invariant]++;
      exploredUntil = Date.now();
    }
    if (found.length > 0) {
      if (!shrinking) worldsUntilFound = stats.worlds;
      shrinking = true;
      smallest = found;
      throw new WorldViolated(found);
    }
  });

  const details = await fc.check(property, {
    numRuns: options.count,
    seed,
    path: options.path,
    endOnFailure: false, // shrink: the smallest story that still breaks is the one worth reading
    interruptAfterTimeLimit: options.seconds === undefined ? undefined : options.seconds * 1000,
    markInterruptAsFailure: false,
  });
  const elapsedMs = Date.now() - started;
  const report: ExploreReport = { seed, ...stats, violations, elapsedMs, worldsPerMinute: stats.worlds / (Math.max(1, exploredUntil - started) / 60_000) };
  if (details.failed && details.counterexample) {
    const [world] = details.counterexample;
    if (details.errorInstance instanceof WorldViolated) {
      report.counterexample = { world, violations: smallest, path: details.counterexamplePath ?? '', size: sizeOf(world), worldsUntilFound };
    } else {
      report.error = String((details.errorInstance as Error | undefined)?.stack ?? details.errorInstance);
      report.counterexample = { world, violations: [], path: details.counterexamplePath ?? '', size: sizeOf(world), worldsUntilFound };
    }
  }
  return report;
}

/** The report as a table, and a failing world with the one command that replays it. */
export function formatReport(report: ExploreReport): string {
  const rows: [string, string | number][] = [
    ['seed', report.seed],
    ['worlds', report.worlds],
    ['orders', report.orders],
    ['deliveries', report.deliveries],
    ['visits refused (429)', report.visitsSkipped],
    ['orders fulfilled', report.fulfilled],
    ...INVARIANTS.map((name): [string, number] => [`violations: ${name}`, report.violations[name]]),
    ['seconds', (report.elapsedMs / 1000).toFixed(1)],
    ['worlds per minute', report.worldsPerMinute.toFixed(1)],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`);
  const example = report.counterexample;
  if (example) {
    lines.push('', report.error ? 'The harness failed on this world:' : `Violated after ${example.worldsUntilFound} worlds; shrunk to:`);
    lines.push(JSON.stringify(example.world, null, 2));
    lines.push(`size: ${example.size.orders} orders, ${example.size.steps} steps, ${example.size.deliveries} deliveries`);
    for (const v of example.violations) lines.push(`  ${v.invariant} (order ${v.order}): ${v.detail}`);
    if (report.error) lines.push(report.error);
    lines.push('', `replay: npm run explore -- --seed ${report.seed} --path ${example.path}`);
  }
  return lines.join('\n');
}
