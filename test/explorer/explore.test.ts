import fs from 'node:fs';
import path from 'node:path';
import { checkOneWorld, exploreWorlds, formatReport } from './explore-worlds';
import { startExplorer, type Explorer } from './run-world';
import type { World } from './world';

// The schedule explorer (issue 19) in `npm test`: a fixed-seed slice of random worlds on the real
// product, and every world that ever broke an invariant, kept as a regression test by name.
// `npm run explore` runs more; a failure here prints the shrunk world and its replay commands.
const SEED = 19;
const WORLDS = 40;

const REGRESSIONS_DIR = path.join(__dirname, 'regressions');
const regressions = fs
  .readdirSync(REGRESSIONS_DIR)
  .filter((file) => file.endsWith('.json'))
  .map((file) => ({ name: file.replace(/\.json$/, ''), ...(JSON.parse(fs.readFileSync(path.join(REGRESSIONS_DIR, file), 'utf8')) as { found: string; world: World }) }));

let explorer: Explorer;

beforeAll(async () => {
  explorer = await startExplorer();
}, 120_000);

afterAll(async () => {
  await explorer?.stop();
});

test(`when ${WORLDS} random worlds (seed ${SEED}) run on the real product, then no invariant is violated, and the worlds fulfilled paid orders`, async () => {
  const report = await exploreWorlds(explorer, { count: WORLDS, seed: SEED, shrinkSeconds: 60 });
  const table = formatReport(report);

  expect({ counterexample: report.counterexample ? table : undefined }).toEqual({ counterexample: undefined });
  expect(report.worlds).toBe(WORLDS);
  expect(report.deliveries).toBeGreaterThan(0);
  expect(report.fulfilled).toBeGreaterThan(0);
}, 300_000);

test.each(regressions)('regression world $name: no invariant is violated ($found)', async ({ world }) => {
  expect(await checkOneWorld(explorer, world)).toEqual([]);
}, 60_000);
