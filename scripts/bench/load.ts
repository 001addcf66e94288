/** Offered load and the statistics the benchmark reports. */
import fs from 'node:fs';
import { eventually } from '../../test/helpers/eventually';

export interface Latencies {
  /** Milliseconds, one per call that succeeded. */
  ms: number[];
  /** Calls that failed (an error or a non-2xx answer). */
  failed: number;
}

/**
 * Open loop: call `fire(i)` `count` times at `perSecond`, on schedule whether or not earlier calls
 * have answered, as Stripe sends webhooks. Each call's latency is timed from when it was sent.
 */
export async function openLoop(perSecond: number, count: number, fire: (i: number) => Promise<boolean>): Promise<Latencies> {
  const result: Latencies = { ms: [], failed: 0 };
  const startedAt = performance.now();
  const calls: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = startedAt + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    calls.push(timedCall(() => fire(i), result));
  }
  await Promise.all(calls);
  return result;
}

/** Closed loop: `items` through `work`, `inFlight` at a time. */
export async function inParallel<T>(items: T[], inFlight: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index]!, index);
      }
    }),
  );
}

async function timedCall(call: () => Promise<boolean>, into: Latencies): Promise<void> {
  const sent = performance.now();
  try {
    if (await call()) into.ms.push(performance.now() - sent);
    else into.failed++;
  } catch {
    into.failed++;
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The most events in any one-second window. */
export function peakPerSecond(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= 1000) start++;
    peak = Math.max(peak, end - start + 1);
  }
  return peak;
}

/** Polls `done` every `everyMs` until it holds or `timeoutMs` passes; returns whether it held. */
export function waitUntil(done: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<boolean> {
  return eventually(done, (held) => held, { timeoutMs, intervalMs: everyMs });
}

/** Resident memory of a process, in MB (Linux). */
export function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}
