import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

export interface MemoryStep {
  step: string;
  rssMb: number;
  /** What this step added to the one before. */
  addedMb: number;
}

/** Runs memory-breakdown.ts in a fresh process and returns each step's resident memory. */
export async function measureMemoryBreakdown(temporalAddress: string): Promise<MemoryStep[]> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', path.join(__dirname, 'memory-breakdown.ts')],
    { env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress }, maxBuffer: 10 * 1024 * 1024 },
  );
  let previous = 0;
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      const { step, rssMb } = JSON.parse(line) as { step: string; rssMb: number };
      const added = rssMb - previous;
      previous = rssMb;
      return { step, rssMb, addedMb: added };
    });
}
