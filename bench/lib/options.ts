// Command-line options of `npm run bench`.
import { parseArgs } from 'node:util';
import type { AssetstoreKind } from '../../test/helpers/girder-server.js';

export const CASES = ['seq-read', 'random-read', 'listing', 'big-copy', 'small-files', 'many-files', 'transport-read'] as const;
export type CaseName = (typeof CASES)[number];

/** The cases that run against an S3-backed server (random-read's curl reference does not follow redirects). */
export const S3_CASES: readonly CaseName[] = ['seq-read', 'big-copy'];

export interface BenchOptions {
  runs: number;
  /** Runs of the listing and many-files cases (they are long at 10,000 items on mongomock). */
  listingRuns: number;
  sizeMiB: number;
  items: number;
  folders: number;
  smallFiles: number;
  randomReads: number;
  only: ReadonlySet<CaseName>;
  /** Where the benchmark server keeps file bytes: its disk, or S3 (a local moto server). */
  assetstore: AssetstoreKind;
  keep: boolean;
  /** Write V8 CPU profiles of every daemon here (NODE_OPTIONS=--cpu-prof). */
  cpuProfDir: string | undefined;
  /** Directory of the JSON results. */
  resultsDir: string;
}

export const USAGE = `usage: npm run bench -- [options]
  --runs N          runs per case; the table shows medians (default 3)
  --listing-runs N  runs of the listing and many-files cases (default: --runs up to 2,000
                    items, else 1: on mongomock one run over 10,000 items takes about 40 minutes)
  --size-mib N      size of the big file for reads and cp (default 1024)
  --items N         items of the listing and many-files cases (many-files: 4 KiB each), spread
                    over --folders folders (default 10000)
  --folders N       folders of the listing and many-files cases (default 100)
  --small-files N   4 KiB files of the small-files case (default 1000)
  --random-reads N  4 KiB reads of the random-read case (default 200)
  --only a,b        run only these cases: ${CASES.join(', ')}
  --assetstore KIND filesystem (default), or s3: the server keeps the bytes in a local S3
                    (moto); reads follow its 303 to a presigned URL, and so does the curl
                    reference. Cases on s3: ${S3_CASES.join(', ')} (the default there)
  --keep            leave the servers and the last mounts up at the end (Ctrl-C to stop)
  --cpu-prof DIR    write a V8 CPU profile of each daemon into DIR (slows the daemon a little)
  --results DIR     where the JSON goes (default bench/results)`;

/** The whole number `text` of option --`name` (at least `min`), or `fallback` when it is not given. */
export function count(name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} wants an integer >= ${min}, got ${text}`);
  return n;
}

export function parseOptions(argv: string[], repoRoot: string): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      'listing-runs': { type: 'string' },
      'size-mib': { type: 'string' },
      items: { type: 'string' },
      folders: { type: 'string' },
      'small-files': { type: 'string' },
      'random-reads': { type: 'string' },
      only: { type: 'string' },
      assetstore: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      results: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const assetstore = values.assetstore ?? 'filesystem';
  if (assetstore !== 'filesystem' && assetstore !== 's3') throw new Error(`--assetstore wants filesystem or s3, got ${assetstore}`);
  const only = new Set<CaseName>();
  for (const name of (values.only ?? (assetstore === 's3' ? S3_CASES : CASES).join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(CASES as readonly string[]).includes(name)) throw new Error(`--only: unknown case ${name} (cases: ${CASES.join(', ')})`);
    if (assetstore === 's3' && !S3_CASES.includes(name as CaseName)) throw new Error(`--only: ${name} does not run on --assetstore s3 (cases there: ${S3_CASES.join(', ')})`);
    only.add(name as CaseName);
  }
  const folders = count('folders', values.folders, 100);
  const runs = count('runs', values.runs, 3);
  const items = count('items', values.items, 10_000, folders);
  return {
    runs,
    listingRuns: count('listing-runs', values['listing-runs'], items <= 2000 ? runs : 1),
    sizeMiB: count('size-mib', values['size-mib'], 1024),
    items,
    folders,
    smallFiles: count('small-files', values['small-files'], 1000),
    randomReads: count('random-reads', values['random-reads'], 200),
    only,
    assetstore,
    keep: values.keep ?? false,
    cpuProfDir: values['cpu-prof'],
    resultsDir: values.results ?? `${repoRoot}/bench/results`,
  };
}
