/**
 * The study's statistics, pure: paired differences between two arms over the seeds both ran,
 * a 95% t-interval for their mean, and the win rate.
 */

/** t_{0.975, df} for df = 1 … 30 (two-sided 95%); beyond 30 the normal 1.96 is close enough for a table. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
  2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086,
  2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
] as const;

export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new Error(`degrees of freedom must be a whole number ≥ 1, got ${df}`);
  return T975[df - 1] ?? 1.96;
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n − 1); 0 for a single value. */
export function sampleSd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

export interface PairedComparison {
  /** Seeds both arms ran. */
  n: number;
  /** Mean of (arm − baseline). */
  meanDiff: number;
  sdDiff: number;
  /** 95% t-interval of the mean difference; undefined with fewer than two pairs. */
  ci?: [number, number];
  /** Share of pairs the arm wins; a tie counts half. */
  winRate: number;
}

/** Pairs `arm` with `baseline` by key (the seed) and compares them. */
export function pairedComparison(arm: ReadonlyMap<number, number>, baseline: ReadonlyMap<number, number>): PairedComparison | undefined {
  const diffs: number[] = [];
  for (const [seed, a] of arm) {
    const b = baseline.get(seed);
    if (b !== undefined) diffs.push(a - b);
  }
  const n = diffs.length;
  if (n === 0) return undefined;
  const m = mean(diffs);
  const sd = sampleSd(diffs);
  const half = n >= 2 ? tQuantile975(n - 1) * (sd / Math.sqrt(n)) : undefined;
  const wins = diffs.reduce((w, d) => w + (d > 0 ? 1 : d === 0 ? 0.5 : 0), 0);
  return { n, meanDiff: m, sdDiff: sd, ...(half === undefined ? {} : { ci: [m - half, m + half] as [number, number] }), winRate: wins / n };
}
