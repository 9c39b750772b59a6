// Benchmark rows: samples of ours and of a reference from the same run, the ratio of their medians
// against a target, the daemon's peak RSS; printed as a table and saved as JSON.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { median, percentile } from './stats.js';

export const RSS_TARGET_MIB = 200;

export interface Target {
  /** `min`: ratio must be at least `ratio` (throughput); `max`: at most (time). */
  kind: 'min' | 'max';
  ratio: number;
}

export interface Row {
  name: string;
  unit: string;
  /** Samples, one per run (or per read, for latencies). */
  ours: number[];
  refName: string;
  ref: number[];
  target?: Target;
  /** Peak RSS of the daemon over the case, MiB (max over the runs). */
  rssMiB?: number;
  /** CPU seconds the daemon used, one per run. */
  daemonCpuS?: number[];
  /** How samples are summed up (default: median); latency rows use p50 or p99. */
  stat?: 'median' | 'p99';
  /** HTTP requests the mount made (median over runs). */
  requests?: number;
  /** Of those, the ones about folders (listing pages, creation) per folder, and the rest per file. */
  perFolder?: number;
  perFile?: number;
  note?: string;
}

export interface RowSummary {
  ours: number;
  ref: number;
  ratio: number;
  met: boolean | undefined;
  rssMet: boolean | undefined;
}

export function summarize(row: Row): RowSummary {
  const p = row.stat === 'p99' ? 99 : 50;
  const ours = percentile(row.ours, p);
  const ref = percentile(row.ref, p);
  const ratio = ours / ref;
  // a row not measured yet (a run stopped early) has no ratio: nothing met or missed
  const met = row.target === undefined || !Number.isFinite(ratio) ? undefined : row.target.kind === 'min' ? ratio >= row.target.ratio : ratio <= row.target.ratio;
  const rssMet = row.rssMiB === undefined ? undefined : row.rssMiB < RSS_TARGET_MIB;
  return { ours, ref, ratio, met, rssMet };
}

function num(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function yesNo(b: boolean | undefined): string {
  return b === undefined ? '-' : b ? 'yes' : 'NO';
}

/** `418 (2.00/folder + 1.00/file)`: requests in all, and split per folder and per file when known. */
export function formatRequests(total: number, perFolder?: number, perFile?: number): string {
  const all = String(Math.round(total));
  return perFolder === undefined || perFile === undefined ? all : `${all} (${perFolder.toFixed(2)}/folder + ${perFile.toFixed(2)}/file)`;
}

/** A Markdown table (readable on a terminal too). */
export function formatTable(rows: readonly Row[]): string {
  const header = ['case', 'girder-mount', 'reference', 'ratio', 'target', 'met', 'daemon peak RSS', 'daemon CPU', 'requests'];
  const lines = rows.map((row) => {
    const s = summarize(row);
    const target = row.target === undefined ? '-' : `${row.target.kind === 'min' ? '>=' : '<='} ${Number(row.target.ratio.toFixed(2))}x`;
    const rss = row.rssMiB === undefined ? '-' : `${row.rssMiB.toFixed(0)} MiB${s.rssMet === false ? ' (NO)' : ''}`;
    return [
      row.name,
      `${num(s.ours)} ${row.unit}`,
      `${num(s.ref)} ${row.unit} (${row.refName})`,
      Number.isFinite(s.ratio) ? `${s.ratio.toFixed(2)}x` : '-',
      target,
      yesNo(s.met),
      rss,
      row.daemonCpuS === undefined || row.daemonCpuS.length === 0 ? '-' : `${median(row.daemonCpuS).toFixed(1)} s`,
      row.requests === undefined ? '-' : formatRequests(row.requests, row.perFolder, row.perFile),
    ];
  });
  const all = [header, ...lines];
  const widths = header.map((_, i) => Math.max(...all.map((cells) => (cells[i] as string).length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(line)].join('\n');
}

export interface Results {
  startedAt: string;
  finishedAt: string;
  host: Host;
  options: Record<string, unknown>;
  notes: string[];
  rows?: Array<Row & { summary: RowSummary }>;
  [more: string]: unknown;
}

export interface Host {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  kernel: string;
  node: string;
  /** 1-minute load average when asked: other work on the machine skews every figure. */
  load1: number;
}

export function hostInfo(): Host {
  return {
    load1: Math.round(os.loadavg()[0] * 100) / 100,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
  };
}

/** Writes `results` to `<dir>/<name>-<timestamp>.json`; resolves with the path. */
export async function saveResults(dir: string, name: string, results: Results): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}-${results.startedAt.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(results, null, 2) + '\n');
  return file;
}
