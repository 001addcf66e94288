/**
 * Durations as operators write them ("7 days", "36 hours", "90 minutes", "30s"), in milliseconds.
 * Side-effect free, so the workflow and the configuration read durations the same way without the
 * SDK's internal helpers.
 */
const UNIT_MS: Record<string, number> = {
  ms: 1,
  millisecond: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
};

/** A number is milliseconds already; a string is `<number> <unit>`. Throws on anything else. */
export function durationMs(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`not a duration: ${value}`);
    return value;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(value);
  if (!match) throw new Error(`not a duration: ${JSON.stringify(value)}`);
  const name = match[2]!.toLowerCase();
  const unit = UNIT_MS[name] ?? UNIT_MS[name.replace(/s$/, '')]; // "days", "hours"
  if (unit === undefined) throw new Error(`not a duration: ${JSON.stringify(value)}`);
  return Number(match[1]) * unit;
}
