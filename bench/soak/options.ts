// Command-line options of `npm run bench:soak`.
import { parseArgs } from 'node:util';

export interface SoakOptions {
  minutes: number;
  writers: number;
  readers: number;
  /** Workers doing mkdir, mv, rm and listings. */
  namespaceWorkers: number;
  minSize: number;
  maxSize: number;
  /** Mean pause between one worker's operations, ms. */
  pauseMs: number;
  /** Seconds between samples of the daemon's RSS, fds and status. */
  sampleSeconds: number;
  /** Writers wait while this many uploads are pending (keeps the soak in a steady state). */
  maxPending: number;
  seed: number;
  resultsDir: string;
  /** Extra environment of the daemon (experiments: NODE_OPTIONS, MALLOC_ARENA_MAX...). */
  daemonEnv: Record<string, string>;
  /** Every line the daemon prints goes here too (with --daemon-env GIRDER_MOUNT_LOG_LEVEL=debug: a mismatch's story). */
  daemonLogFile: string | undefined;
}

export const USAGE = `usage: npm run bench:soak -- [options]
  --minutes N         how long readers and writers run (default 30)
  --writers N         parallel writers: cp, dd, cat > and write-then-mv of new files and overwrites (default 3)
  --readers N         parallel readers: sha512sum / dd | sha512sum of files whose content is known (default 3)
  --namespace N       parallel workers doing mkdir, mv (files and dirs), rm, rm -r, ls -lR (default 1)
  --min-kib N         smallest file written, KiB (default 4)
  --max-mib N         largest file written, MiB (default 20)
  --pause-ms N        mean pause between one worker's operations (default 200)
  --sample-seconds N  RSS / fd / status sampling period (default 5)
  --max-pending N     writers wait while this many uploads are pending (default 32)
  --seed N            seed of the operation mix (default: random)
  --results DIR       where the JSON goes (default bench/results)
  --daemon-env K=V    an environment variable for the daemon, e.g. NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2 (repeatable)
  --daemon-log FILE   keep every line the daemon prints in FILE (with --daemon-env GIRDER_MOUNT_LOG_LEVEL=debug)`;

function int(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} wants a number >= ${min}, got ${text}`);
  return n;
}

export function parseSoakOptions(argv: string[], repoRoot: string): SoakOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      writers: { type: 'string' },
      readers: { type: 'string' },
      namespace: { type: 'string' },
      'min-kib': { type: 'string' },
      'max-mib': { type: 'string' },
      'pause-ms': { type: 'string' },
      'sample-seconds': { type: 'string' },
      'max-pending': { type: 'string' },
      seed: { type: 'string' },
      results: { type: 'string' },
      'daemon-env': { type: 'string', multiple: true },
      'daemon-log': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const minSize = Math.round(int('min-kib', values['min-kib'], 4, 1) * 1024);
  const maxSize = Math.round(int('max-mib', values['max-mib'], 20, 0.01) * 1024 * 1024);
  if (maxSize < minSize) throw new Error('--max-mib is below --min-kib');
  const daemonEnv: Record<string, string> = {};
  for (const kv of values['daemon-env'] ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--daemon-env wants NAME=VALUE, got ${kv}`);
    daemonEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return {
    minutes: int('minutes', values.minutes, 30, 0.1),
    writers: int('writers', values.writers, 3, 1),
    readers: int('readers', values.readers, 3, 1),
    namespaceWorkers: int('namespace', values.namespace, 1, 0),
    minSize,
    maxSize,
    pauseMs: int('pause-ms', values['pause-ms'], 200, 0),
    sampleSeconds: int('sample-seconds', values['sample-seconds'], 5, 0.5),
    maxPending: int('max-pending', values['max-pending'], 32, 1),
    seed: int('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0),
    resultsDir: values.results ?? `${repoRoot}/bench/results`,
    daemonEnv,
    daemonLogFile: values['daemon-log'],
  };
}
