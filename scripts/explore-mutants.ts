/**
 * `npm run explore:mutants -- --count N --seconds S --seed X [--shrink-seconds S] [--only NN,...] [--markdown FILE] [--check]`
 * (defaults: 300 worlds, 240 s, seed 1; shrinking as long as the explorer's default):
 * the proof that the schedule explorer bites (issue 19). Each patch in test/explorer/mutants/
 * re-opens one hole this product once had. For each, on a scratch copy of the work tree (never
 * the work tree itself): apply the patch, run `scripts/explore.ts` with the same count, time
 * budget and seed, and read its JSON report. A violation counts as found only when its shrunk
 * world, replayed, breaks again with the mutant and passes once the patch is reverted (the
 * explorer's own flaky or unfixed findings are not the mutant's). Prints a markdown table (found
 * or not, after how many worlds and seconds, the shrunk world's size) and exits 0 only when every
 * mutant was found.
 * `--world FILE` replays one world (a regression file or a world's JSON) on each mutant instead of
 * searching: it shows a world of the generator's space exposes the hole, where a search is too rare to.
 * `--check` only applies each patch and typechecks the copy (no explorer): are the mutants still
 * right for today's code?
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ExploreReport } from '../test/explorer/explore-worlds';

const ROOT = path.resolve(__dirname, '..');
const MUTANTS = path.join(ROOT, 'test', 'explorer', 'mutants');

interface Mutant {
  name: string;
  hole: string;
  patch: string;
}

interface Outcome {
  mutant: Mutant;
  found: boolean;
  /** Why the run says nothing about the explorer (the patch did not apply, the harness broke). */
  error?: string;
  report?: ExploreReport;
}

function mutants(only: string[]): Mutant[] {
  return fs
    .readdirSync(MUTANTS)
    .filter((file) => file.endsWith('.patch') && (only.length === 0 || only.some((prefix) => file.startsWith(prefix))))
    .sort()
    .map((file) => {
      const patch = path.join(MUTANTS, file);
      // The header's first line: `# Mutant NN: what the hole is.`
      const first = fs.readFileSync(patch, 'utf8').split('\n')[0] ?? '';
      return { name: file.replace(/\.patch$/, ''), hole: first.replace(/^#\s*Mutant \d+:\s*/, ''), patch };
    });
}

/** The work tree as it is now (tracked and untracked, not ignored files), with node_modules linked, in a fresh directory. */
function scratchCopy(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mutant-${name}-`));
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0');
  for (const file of files) {
    const from = path.join(ROOT, file);
    // Deleted in the work tree; or node_modules, linked below (in a git worktree it is often a symlink git does not ignore).
    if (!file || file === 'node_modules' || !fs.existsSync(from)) continue;
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.copyFileSync(from, path.join(dir, file));
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  // Its own repository, so `git apply` patches this copy and nothing above it.
  execFileSync('git', ['init', '-q'], { cwd: dir });
  return dir;
}

// What is running now, so an interrupted run stops it and removes its copy.
const current: { child?: ChildProcess; dir?: string } = {};

/**
 * Runs `command` in `cwd` with its output shown, in a process group of its own: once it exits,
 * whatever it left running (a test server, an explorer whose parent died) is stopped with the
 * group, so no two explorers ever run at once. Resolves to its exit code, or the signal that ended it.
 */
function run(cwd: string, command: string, args: string[]): Promise<number | NodeJS.Signals> {
  return new Promise((resolve, reject) => {
    const child = (current.child = spawn(command, args, { cwd, stdio: 'inherit', detached: true }));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      stopGroup(child);
      resolve(code ?? signal ?? 1);
    });
  });
}

function stopGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

interface RunOptions {
  count: string;
  seconds: string;
  seed: string;
  shrinkSeconds?: string;
  check: boolean;
  /** A world (JSON file) to replay instead of a random search: does the generator's space hold a world that exposes it? */
  world?: string;
}

/** The explorer in `dir`: one process (no npx or tsx launcher above it), as `npm start` runs the product. */
const explore = (dir: string, args: string[]) => run(dir, process.execPath, ['--import', 'tsx', 'scripts/explore.ts', ...args]);

async function tryMutant(mutant: Mutant, options: RunOptions): Promise<Outcome> {
  const dir = (current.dir = scratchCopy(mutant.name));
  try {
    if ((await run(dir, 'git', ['apply', mutant.patch])) !== 0) return { mutant, found: false, error: 'the patch does not apply' };
    if (options.check) {
      const typechecks = (await run(dir, 'npx', ['tsc', '--noEmit', '-p', '.'])) === 0;
      return { mutant, found: false, error: typechecks ? undefined : 'the mutant does not typecheck' };
    }
    if (options.world) {
      // A directed world, not a search: it exposes the hole if it breaks with the mutant and passes without it.
      const replay = ['--world', path.resolve(options.world)];
      if ((await explore(dir, replay)) !== 1) return { mutant, found: false, error: 'the world given passes on the mutant' };
      if ((await run(dir, 'git', ['apply', '-R', mutant.patch])) !== 0 || (await explore(dir, replay)) !== 0) return { mutant, found: false, error: 'the world given breaks the unmutated product too' };
      return { mutant, found: true };
    }
    const json = path.join(dir, 'report.json');
    const args = ['--count', options.count, '--seconds', options.seconds, '--seed', options.seed, '--json', json];
    if (options.shrinkSeconds) args.push('--shrink-seconds', options.shrinkSeconds);
    const ended = await explore(dir, args);
    if (!fs.existsSync(json)) return { mutant, found: false, error: `the explorer wrote no report (${typeof ended === 'number' ? `exit ${ended}` : ended})` };
    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as ExploreReport;
    if (report.error) return { mutant, found: false, error: 'the harness failed (no violation)', report };
    const world = report.counterexample?.world;
    if (!world) return { mutant, found: false, report };
    // Found only if the hole is what breaks it: the shrunk world breaks again with the mutant, and not without it.
    const replay = ['--world', JSON.stringify(world)];
    if ((await explore(dir, replay)) !== 1) return { mutant, found: false, error: 'its shrunk world passes when replayed (a flaky violation)', report };
    if ((await run(dir, 'git', ['apply', '-R', mutant.patch])) !== 0 || (await explore(dir, replay)) !== 0) {
      return { mutant, found: false, error: 'its shrunk world breaks the unmutated product too', report };
    }
    return { mutant, found: true, report };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true }); // unlinks node_modules, never follows it
    current.dir = undefined;
  }
}

function table(outcomes: Outcome[]): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const rows = outcomes.map(({ mutant, found, error, report }) => {
    const example = found ? report?.counterexample : undefined;
    const size = example ? `${example.size.orders} orders, ${example.size.steps} steps, ${example.size.deliveries} deliveries` : '';
    const verdict = found && !report ? 'by the world given' : found ? 'yes' : error ? `no: ${error}` : report ? `no (${report.worlds} worlds, ${(report.elapsedMs / 1000).toFixed(0)} s)` : 'typechecks';
    const worlds = example ? String(example.worldsUntilFound) : '';
    const seconds = example ? example.secondsUntilFound.toFixed(1) : '';
    return `| ${mutant.name} | ${cell(mutant.hole)} | ${verdict} | ${worlds} | ${seconds} | ${size} |`;
  });
  return ['| mutant | hole | found | after worlds | after seconds | shrunk world |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '300' },
      seconds: { type: 'string', default: '240' },
      seed: { type: 'string', default: '1' },
      'shrink-seconds': { type: 'string' },
      only: { type: 'string' },
      markdown: { type: 'string' },
      check: { type: 'boolean', default: false },
      world: { type: 'string' },
    },
  });
  const chosen = mutants(values.only ? values.only.split(',') : []);
  if (chosen.length === 0) throw new Error(`no mutant in ${MUTANTS} matches --only ${values.only}`);

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      if (current.child) stopGroup(current.child);
      if (current.dir) fs.rmSync(current.dir, { recursive: true, force: true });
      process.exit(130);
    });
  }

  const outcomes: Outcome[] = [];
  for (const mutant of chosen) {
    console.log(`\n=== ${mutant.name}: ${mutant.hole}`);
    outcomes.push(await tryMutant(mutant, { ...values, shrinkSeconds: values['shrink-seconds'] }));
  }

  const command = values.check
    ? 'npm run explore:mutants -- --check'
    : values.world
      ? `npm run explore:mutants -- --world ${values.world}`
      : `npm run explore:mutants -- --count ${values.count} --seconds ${values.seconds} --seed ${values.seed}${values['shrink-seconds'] ? ` --shrink-seconds ${values['shrink-seconds']}` : ''}`;
  const markdown = `${table(outcomes)}\n\n\`${command}\`${values.only ? ` (--only ${values.only})` : ''}, ${new Date().toISOString().slice(0, 10)}\n`;
  console.log(`\n${markdown}`);
  if (values.markdown) fs.writeFileSync(values.markdown, markdown);
  if (values.check) return outcomes.every((outcome) => !outcome.error) ? 0 : 1;
  return outcomes.every((outcome) => outcome.found) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
