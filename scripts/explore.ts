import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { checkOneWorld, exploreWorlds, formatReport, mergeReports, type ExploreReport } from '../test/explorer/explore-worlds';
import type { World } from '../test/explorer/world';
import { startExplorer, workerHealth } from '../test/explorer/run-world';

// `npm run explore -- --count N --seconds S --seed X [--path P] [--json FILE] [--resume FILE] [--shrink-seconds S] [--workers W]`,
// or `-- --world JSON|FILE`. `--resume FILE` keeps a long run's progress after each batch of 100 worlds: the
// same command run again (after a session ended) goes on from there. `--workers W` runs W explorers side by
// side, each with its own servers, sharing the batches (one world waits on Temporal more than it computes).
// Random worlds on the real product (issue 19); exits 1 when a world breaks an invariant, printing the
// shrunk world and its replay commands.
const options = {
  count: { type: 'string' },
  seconds: { type: 'string' },
  seed: { type: 'string' },
  path: { type: 'string' },
  json: { type: 'string' },
  world: { type: 'string' },
  resume: { type: 'string' },
  'shrink-seconds': { type: 'string' },
  workers: { type: 'string' },
  worker: { type: 'string' }, // `i/W`: this process is explorer i of W (set by --workers)
  quiet: { type: 'boolean' },
} as const;

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`--${name} must be a whole number, got ${value}`);
  return parsed;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options });
  const workers = integer('workers', values.workers) ?? 1;
  if (workers > 1 && !values.world && !values.path) return runWorkers(values, workers);

  // The product's own logs are not the explorer's output: only the SDK's errors are shown.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const explorer = await startExplorer();
  // Stopped (by --workers' parent, or a user): stop the servers too, or the test server's JVM outlives us.
  process.once('SIGTERM', () => void withDeadline(explorer.stop(), 10_000).finally(() => process.exit(143)));
  try {
    if (values.world) {
      // One world as written (JSON, or a file of it): a counterexample or a regression world.
      const text = values.world.trim().startsWith('{') ? values.world : fs.readFileSync(values.world, 'utf8');
      const parsed = JSON.parse(text) as World | { world: World };
      // A regression file holds the world beside what it found.
      const violations = await checkOneWorld(explorer, 'world' in parsed ? parsed.world : parsed);
      for (const v of violations) console.log(`${v.invariant} (order ${v.order}, ${v.id}): ${v.detail}`);
      console.log(violations.length === 0 ? 'no violation' : `${violations.length} violations`);
      return violations.length === 0 ? 0 : 1;
    }
    const [index, of] = (values.worker ?? '0/1').split('/').map(Number) as [number, number];
    const report = await exploreWorlds(explorer, {
      count: integer('count', values.count) ?? 100,
      seconds: integer('seconds', values.seconds),
      seed: integer('seed', values.seed),
      path: values.path,
      progressFile: values.resume,
      shrinkSeconds: integer('shrink-seconds', values['shrink-seconds']),
      worker: { index, of },
      onBatch: (r) => console.error(`${values.worker ? `explorer ${index + 1}/${of}: ` : ''}${r.worlds} worlds, ${Object.values(r.violations).reduce((a, b) => a + b, 0)} violations, ${r.worldsPerMinute.toFixed(1)} worlds/min; ${workerHealth(explorer)}`),
    });
    if (!values.quiet) console.log(formatReport(report));
    // For tools (the mutation runner, --workers): the report as JSON.
    if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2));
    return report.counterexample ? 1 : 0;
  } finally {
    await explorer.stop();
  }
}

/**
 * W explorer processes, explorer i taking batches i, i + W, ... of one seed (so the run is the
 * same whatever W), each with its own progress file beside `--resume FILE`. The first to find a
 * violation stops the others; the reports are merged into one table.
 */
async function runWorkers(values: ReturnType<typeof parseArgs<{ options: typeof options }>>['values'], workers: number): Promise<number> {
  const count = integer('count', values.count) ?? 100;
  const seed = integer('seed', values.seed) ?? (Date.now() ^ (Math.random() * 0x100000000)) >>> 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'explore-'));
  const batches = Math.ceil(count / 100);
  const children = Array.from({ length: workers }, (_, i) => {
    const json = path.join(dir, `${i}.json`);
    // Explorer i's share of `count`: its batches, the last of the run possibly short.
    let share = 0;
    for (let batch = i; batch < batches; batch += workers) share += Math.min(100, count - batch * 100);
    // A stopped explorer writes no report: its progress file holds every batch it finished.
    const progress = values.resume ? `${values.resume}.${i}-of-${workers}` : path.join(dir, `${i}.progress.json`);
    const args = ['--count', String(share), '--seed', String(seed), '--worker', `${i}/${workers}`, '--json', json, '--resume', progress, '--quiet'];
    if (values.seconds) args.push('--seconds', values.seconds);
    if (values['shrink-seconds']) args.push('--shrink-seconds', values['shrink-seconds']);
    // EXPLORE_DUMP: each explorer keeps its own histories (one directory shared would be cleared under the other).
    const dump = process.env.EXPLORE_DUMP ? { EXPLORE_DUMP: path.join(process.env.EXPLORE_DUMP, `explorer-${i + 1}`) } : {};
    const child = spawn(process.execPath, [...process.execArgv, __filename, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...dump } });
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 2)));
    return { child, json, progress, exited };
  });
  const stopAll = () => children.forEach(({ child }) => void (child.exitCode === null && child.kill('SIGTERM')));
  process.once('SIGINT', stopAll);
  // The first violation ends the run: the others stop (their progress files keep every finished batch).
  const codes = await Promise.all(children.map(({ exited }) => exited.then((code) => (code === 1 && stopAll(), code))));
  const reports = children
    .map(({ json, progress }) => [json, progress].find((file) => fs.existsSync(file)))
    .filter((file) => file !== undefined)
    .map((file) => JSON.parse(fs.readFileSync(file, 'utf8')) as ExploreReport);
  fs.rmSync(dir, { recursive: true, force: true });
  if (reports.length === 0) throw new Error(`no explorer wrote its report (exit codes ${codes.join(', ')})`);
  const report = mergeReports(reports);
  console.log(formatReport(report));
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2));
  return report.counterexample ? 1 : codes.some((code) => code !== 0 && code !== 1) ? 2 : 0;
}

const withDeadline = (promise: Promise<unknown>, ms: number) => Promise.race([promise.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, ms))]);

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
