/**
 * Child process for fuse-layer tests: mounts a MemoryFs with mountFuse.
 *   node dist/test/helpers/fuse-runner.js '<RunnerConfig as JSON>'
 * Prints one JSON line {"ready":true,...} on stdout once the mount answers.
 * SIGUSR1: writes MemoryFs counters and the event loop's async handles to `statsFile` (via a temp file + rename).
 * SIGUSR2: tries a normal unmount; writes {"ok":true} or {"ok":false,"errno":...} to
 *          `${statsFile}.unmount`, and exits 0 when it worked.
 * SIGTERM/SIGINT: unmounts (lazily if busy) and exits 0.
 */
import { rename, writeFile } from 'node:fs/promises';
import { FsError, errorMessage } from '../../src/errors.js';
import { mountFuse, type MountOptions } from '../../src/fuse/mount.js';
import { createLogger } from '../../src/log.js';
import { MemoryFs, type Faults } from './memory-fs.js';

export interface RunnerConfig {
  mountpoint: string;
  statsFile: string;
  faults?: Faults;
  options?: Partial<MountOptions>;
  logLevel?: string;
  /** Each read waits this long first (to keep many FUSE threads busy at once). */
  readDelayMs?: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;
const logger = createLogger(config.logLevel ?? 'warn', false);
const fs = new MemoryFs(config.faults ?? {});
const readDelayMs = config.readDelayMs ?? 0;
if (readDelayMs > 0) {
  const read = fs.read.bind(fs);
  fs.read = async (fh, into, length, position) => {
    await new Promise((resolve) => setTimeout(resolve, readDelayMs));
    return read(fh, into, length, position);
  };
}

/** libuv async handles in this process's event loop (fuse-native makes one per FUSE thread's state). */
function asyncHandles(): number {
  const report = process.report.getReport() as unknown as { libuv: Array<{ type: string }> };
  return report.libuv.filter((h) => h.type === 'async').length;
}
const options: MountOptions = {
  readOnly: false,
  allowOther: false,
  uid: process.getuid?.() ?? 0,
  gid: process.getgid?.() ?? 0,
  attrTimeoutS: 1,
  fsName: 'memory-fs',
  ...config.options,
};

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(`${file}.tmp`, JSON.stringify(value));
  await rename(`${file}.tmp`, file);
}

const mount = await mountFuse(fs, config.mountpoint, options, logger, { boundMs: 30_000 }).catch((err: unknown) => {
  process.stderr.write(`fuse-runner: ${errorMessage(err)}\n`);
  process.exit(1);
});

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await mount.unmount();
  } catch (err) {
    if (!(err instanceof FsError && err.errno === 'EBUSY')) throw err;
    await mount.detach();
  }
  process.exit(0);
}

process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.on('SIGUSR1', () => {
  void writeJson(config.statsFile, { ...fs.stats, utimensCalls: fs.utimensCalls, openHandles: fs.openHandles(), asyncHandles: asyncHandles() });
});
process.on('SIGUSR2', () => {
  void mount.unmount().then(
    async () => {
      await writeJson(`${config.statsFile}.unmount`, { ok: true });
      process.exit(0);
    },
    async (err: unknown) => {
      const errno = err instanceof FsError ? err.errno : undefined;
      await writeJson(`${config.statsFile}.unmount`, { ok: false, errno, message: errorMessage(err) });
    },
  );
});

process.stdout.write(`${JSON.stringify({ ready: true, mountpoint: mount.mountpoint, utimensFixed: mount.utimensFixed })}\n`);
