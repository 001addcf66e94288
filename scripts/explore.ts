import { parseArgs } from 'node:util';
import { exploreWorlds, formatReport } from '../test/explorer/explore-worlds';
import { startExplorer } from '../test/explorer/run-world';

// `npm run explore -- --count N --seconds S --seed X [--path P]`: random worlds on the real product
// (issue 19). Exits 1 when a world breaks an invariant, printing the shrunk world and its replay command.
async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { count: { type: 'string' }, seconds: { type: 'string' }, seed: { type: 'string' }, path: { type: 'string' } },
  });
  const number = (name: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isInteger(parsed)) throw new Error(`--${name} must be an integer, got ${value}`);
    return parsed;
  };
  const explorer = await startExplorer();
  try {
    const report = await exploreWorlds(explorer, {
      count: number('count', values.count) ?? 100,
      seconds: number('seconds', values.seconds),
      seed: number('seed', values.seed),
      path: values.path,
    });
    console.log(formatReport(report));
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
