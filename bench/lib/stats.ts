// Medians and percentiles of benchmark samples.

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** MiB/s of `bytes` moved in `seconds`. */
export function mibPerS(bytes: number, seconds: number): number {
  return bytes / MiB / seconds;
}
