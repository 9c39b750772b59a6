// The soak's table (Markdown, readable on a terminal) and the figures behind it.
import { RSS_TARGET_MIB } from '../lib/report.js';
import { median } from '../lib/stats.js';
import type { Sample } from './sampler.js';

const MiB = 1024 * 1024;
import type { Tally } from './tally.js';
import type { CheckResult } from './verify.js';

export interface Flatness {
  samples: number;
  rssFirstMiB: number;
  rssMedianMiB: number;
  rssMaxMiB: number;
  /** The kernel's peak RSS (VmHWM) up to the last sample of the soak phase: the max between samples too. */
  rssPeakMiB: number;
  /** Median RSS of the second half of the soak over that of the first half (flat: about 1). */
  rssHalfRatio: number;
  /** Where the RSS goes (MiB, median and max over the soak): see memoryParts(). */
  memory: Record<MemoryPart, { medianMiB: number; maxMiB: number }>;
  fdsFirst: number;
  fdsLast: number;
  fdsMax: number;
  /** Median fds of the second half over the first half. */
  fdsHalfRatio: number;
  maxPendingUploads: number;
  /** CPU seconds the daemon used during the soak phase. */
  daemonCpuS: number;
}

export type MemoryPart = 'rssAnon' | 'heapUsed' | 'heapTotal' | 'external' | 'arrayBuffers' | 'native';

/**
 * The RSS split: anonymous memory (from /proc), the V8 heap, external memory (Buffers and such,
 * from the daemon's status), and the rest, RSS - heap total - external: native memory (malloc
 * arenas of libuv's and libfuse's threads, code, stacks).
 */
function memoryParts(s: Sample): Partial<Record<MemoryPart, number>> {
  const parts: Partial<Record<MemoryPart, number>> = { rssAnon: s.rssAnonKiB / 1024 };
  if (s.heapTotal === undefined || s.external === undefined) return parts;
  return {
    ...parts,
    heapUsed: (s.heapUsed ?? NaN) / MiB,
    heapTotal: s.heapTotal / MiB,
    external: s.external / MiB,
    arrayBuffers: (s.arrayBuffers ?? NaN) / MiB,
    native: s.rssKiB / 1024 - (s.heapTotal + s.external) / MiB,
  };
}

const PARTS: MemoryPart[] = ['rssAnon', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers', 'native'];

export function flatness(samples: readonly Sample[]): Flatness {
  const soak = samples.filter((s) => s.phase === 'soak');
  const rss = soak.map((s) => s.rssKiB / 1024);
  const fds = soak.map((s) => s.fds);
  const mid = soak.length / 2;
  const half = (xs: number[], second: boolean): number[] => xs.filter((_, i) => (second ? i >= mid : i < mid));
  return {
    samples: soak.length,
    rssFirstMiB: rss[0] ?? NaN,
    rssMedianMiB: median(rss),
    rssMaxMiB: Math.max(...rss),
    rssPeakMiB: Math.max(...rss, ...soak.map((s) => (s.hwmKiB ?? NaN) / 1024).filter(Number.isFinite)),
    rssHalfRatio: median(half(rss, true)) / median(half(rss, false)),
    memory: Object.fromEntries(
      PARTS.map((part) => {
        const xs = soak.map((s) => memoryParts(s)[part]).filter((x): x is number => x !== undefined && Number.isFinite(x));
        return [part, { medianMiB: median(xs), maxMiB: xs.length === 0 ? NaN : Math.max(...xs) }];
      }),
    ) as Flatness['memory'],
    fdsFirst: fds[0] ?? NaN,
    fdsLast: fds[fds.length - 1] ?? NaN,
    fdsMax: Math.max(...fds),
    fdsHalfRatio: median(half(fds, true)) / median(half(fds, false)),
    maxPendingUploads: Math.max(0, ...soak.map((s) => s.pendingUploads ?? 0)),
    daemonCpuS: (soak[soak.length - 1]?.cpuS ?? NaN) - (soak[0]?.cpuS ?? NaN),
  };
}


function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const PART_NAMES: Record<MemoryPart, string> = {
  rssAnon: 'RssAnon (anonymous memory)',
  heapUsed: 'V8 heap used',
  heapTotal: 'V8 heap total',
  external: 'external (Buffers and such)',
  arrayBuffers: 'of which ArrayBuffers',
  native: 'native: RSS - heap total - external',
};

export interface ReportInput {
  title: string;
  tally: Tally;
  flat: Flatness;
  server: CheckResult;
  mount: CheckResult;
  drainS: number;
  daemonWarnings: number;
  daemonErrors: number;
}

export function formatReport(r: ReportInput): string {
  const { tally, flat } = r;
  const kinds = [...tally.ops.entries()].sort(([a], [b]) => a.localeCompare(b));
  const opRows = kinds.map(([kind, c]) => [
    kind,
    String(c.ok + c.failed),
    String(c.failed),
    c.bytes === 0 ? '-' : `${(c.bytes / MiB).toFixed(0)} MiB`,
    `${(c.totalMs / Math.max(1, c.ok + c.failed)).toFixed(0)} ms`,
    `${c.maxMs.toFixed(0)} ms`,
  ]);
  const failed = kinds.reduce((s, [, c]) => s + c.failed, 0);
  opRows.push(['all', String(tally.totalOps), String(failed), `${((tally.bytesWritten + tally.bytesRead) / MiB).toFixed(0)} MiB`, '', '']);
  const soakMismatches = tally.mismatches.filter((m) => m.where === 'read').length;
  const num = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const summary: string[][] = [
    ['bytes written (closed writes)', `${(tally.bytesWritten / MiB).toFixed(0)} MiB`],
    ['bytes read and checked during the soak', `${(tally.bytesRead / MiB).toFixed(0)} MiB`],
    ['failed operations', String(failed)],
    ['mismatches: reads during the soak', String(soakMismatches)],
    ['mismatches: final, on Girder (REST sha512)', `${r.server.mismatched.length} of ${r.server.checked} files`],
    ['mismatches: final, through the mount (sha512sum)', `${r.mount.mismatched.length} of ${r.mount.checked} files`],
    ['missing / unexpected entries on Girder', `${r.server.missing.length} / ${r.server.unexpected.length}`],
    ['missing / unexpected entries in the mount', `${r.mount.missing.length} / ${r.mount.unexpected.length}`],
    ['files whose content was unknown after a failure', String(r.server.unknown)],
    ['daemon RSS first / median / max of the samples', `${num(flat.rssFirstMiB)} / ${num(flat.rssMedianMiB)} / ${num(flat.rssMaxMiB)} MiB`],
    ['daemon RSS max against the target', `${num(flat.rssPeakMiB)} MiB (peak, VmHWM), target < ${RSS_TARGET_MIB} MiB: ${flat.rssPeakMiB < RSS_TARGET_MIB ? 'met' : 'NOT met'}`],
    ['daemon RSS median, 2nd half / 1st half', num(flat.rssHalfRatio, 2)],
    ...PARTS.map((part) => [`  ${PART_NAMES[part]}, median / max`, `${num(flat.memory[part].medianMiB)} / ${num(flat.memory[part].maxMiB)} MiB`]),
    ['daemon fds first / last / max', `${flat.fdsFirst} / ${flat.fdsLast} / ${flat.fdsMax}`],
    ['daemon fds median, 2nd half / 1st half', num(flat.fdsHalfRatio, 2)],
    ['daemon CPU during the soak', `${num(flat.daemonCpuS)} s (${num(flat.daemonCpuS / ((tally.bytesWritten + tally.bytesRead) / 2 ** 30), 2)} s per GiB written or read)`],
    ['samples (soak phase)', String(flat.samples)],
    ['most uploads pending at once', String(flat.maxPendingUploads)],
    ['writers waiting on the upload queue', `${(tally.backpressureMs / 1000).toFixed(0)} s`],
    ['drain after the soak', `${r.drainS.toFixed(1)} s`],
    ['daemon log warnings / errors', `${r.daemonWarnings} / ${r.daemonErrors}`],
  ];
  return [
    r.title,
    '',
    table(['operation', 'count', 'failed', 'bytes', 'mean', 'max'], opRows),
    '',
    table(['figure', 'value'], summary),
  ].join('\n');
}
