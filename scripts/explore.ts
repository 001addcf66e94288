import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { checkOneWorld, exploreWorlds, formatReport } from '../test/explorer/explore-worlds';
import type { World } from '../test/explorer/world';
import { startExplorer } from '../test/explorer/run-world';

// `npm run explore -- --count N --seconds S --seed X [--path P] [--json FILE] [--resume FILE] [--shrink-seconds S]`,
// or `-- --world JSON|FILE`. `--resume FILE` keeps a long run's progress after each batch of 100 worlds: the
// same command run again (after a session ended) goes on from there. Random worlds on the real product
// (issue 19); exits 1 when a world breaks an invariant, printing the shrunk world and its replay commands.
async function main(): Promise<number> {
  // The product's own logs are not the explorer's output: only the SDK's errors are shown.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const { values } = parseArgs({
    options: { count: { type: 'string' }, seconds: { type: 'string' }, seed: { type: 'string' }, path: { type: 'string' }, json: { type: 'string' }, world: { type: 'string' }, resume: { type: 'string' }, 'shrink-seconds': { type: 'string' } },
  });
  const number = (name: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isInteger(parsed)) throw new Error(`--${name} must be an integer, got ${value}`);
    return parsed;
  };
  const explorer = await startExplorer();
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
    const report = await exploreWorlds(explorer, {
      count: number('count', values.count) ?? 100,
      seconds: number('seconds', values.seconds),
      seed: number('seed', values.seed),
      path: values.path,
      progressFile: values.resume,
      shrinkSeconds: number('shrink-seconds', values['shrink-seconds']),
    });
    console.log(formatReport(report));
    // For tools (the mutation runner): the report as JSON.
    if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2));
    return report.counterexample ? 1 : 0;
  } finally {
    await explorer.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
