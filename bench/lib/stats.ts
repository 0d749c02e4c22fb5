/**
 * Pure statistics for the benchmark: every figure is a ratio of interleaved runs (ours_i / baseline_i),
 * summarized as median, min and max. Absolute times are kept for display only.
 */

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median (mean of the two middle values for an even count), min and max. Throws on an empty list. */
export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) throw new Error("summarize: no samples");
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}

/** Ratios of the runs paired by iteration: a[i] / b[i]. Both lists come from the same interleaved loop. */
export function pairRatios(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`pairRatios: ${a.length} vs ${b.length} samples`);
  return a.map((x, i) => x / b[i]);
}

/** One reported figure: a ratio summary, what it is measured against, and its target if it has one. */
export interface Figure {
  group: string;
  label: string;
  ratio: Summary;
  /** Upper bound (ratio must be <= target) or lower bound (ratio must be >= target). */
  target?: { op: "<=" | ">=" | "<"; value: number; text: string };
  /** Absolute medians of both sides, ms, for display only. */
  oursMs?: number;
  baseMs?: number;
  note?: string;
}

/** Pass/fail of a figure on its median; undefined when the figure has no target. */
export function verdict(f: Figure): "pass" | "FAIL" | undefined {
  if (!f.target) return undefined;
  const v = f.ratio.median;
  const ok =
    f.target.op === "<="
      ? v <= f.target.value
      : f.target.op === "<"
        ? v < f.target.value
        : v >= f.target.value;
  return ok ? "pass" : "FAIL";
}

/** Formats a ratio with 2 significant decimals (3 below 0.1). */
export function fmtRatio(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 0.1) return x.toFixed(2);
  return x.toPrecision(2);
}

/** Milliseconds as `123 ms` or `4.56 s`. */
export function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

/** Bytes as B/KiB/MiB/GiB, signed. */
export function fmtBytes(b: number): string {
  const sign = b < 0 ? "-" : "";
  let v = Math.abs(b);
  for (const unit of ["B", "KiB", "MiB", "GiB"]) {
    if (v < 1024 || unit === "GiB") return `${sign}${unit === "B" ? v.toFixed(0) : v.toFixed(1)} ${unit}`;
    v /= 1024;
  }
  return `${b} B`;
}
