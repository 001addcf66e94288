import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

// A smoke run of `npm run bench` on the embedded topology, tiny in every dimension: it must run on
// a fresh clone, measure every figure and find every session fulfilled exactly once. No timing is
// asserted (shared machines are noisy); the real figures come from `npm run bench` itself.
test('when the benchmark runs briefly, then it writes every figure and finds every session fulfilled exactly once', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  const doc = path.join(dir, 'benchmarks.md');
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', '..', 'scripts', 'bench', 'run.ts')], {
      env: {
        ...process.env,
        BENCH_TOPOLOGIES: 'embedded',
        BENCH_RATES: '5',
        BENCH_WINDOW_S: '2',
        BENCH_BURST: '20',
        BENCH_WAITING: '20',
        BENCH_LANDING: '2',
        BENCH_DOC: doc,
      },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 5 * 60_000,
    });
    const report = fs.readFileSync(doc, 'utf8');
    for (const row of [
      '| end-to-end paid sessions/s |',
      '| ack p99 at 5 ev/s, workers fulfilling |',
      '| ack overhead at 5 ev/s (p50) |',
      '| landing page, 2xx to outcome shown (p95) |',
      '| Stripe requests during the burst and its refunds (peak/s) |',
      '| idle RSS of the all-in-one process |',
      '| RSS with 20 sessions waiting |',
      '| server round trips per paid session |',
      '| PGlite: PostgreSQL in WebAssembly, opened and migrated |',
    ]) {
      expect(report).toContain(row);
    }
    // 10 acknowledged, 20 in the burst, 2 landing-page orders, 20 that waited: every one once.
    expect(report).toMatch(/\| exactly once \| 52\/52 fulfilled once, 52\/52 one receipt; 20\/20 redeliveries acknowledged \(20 already settled\)/);
    expect(report).not.toContain('NaN');
    expect(stdout).toContain('[embedded] settled in');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 6 * 60_000);
