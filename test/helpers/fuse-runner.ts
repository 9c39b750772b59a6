/**
 * Child process for fuse-layer tests: mounts a MemoryFs with mountFuse.
 *   node dist/test/helpers/fuse-runner.js '<RunnerConfig as JSON>'
 * Prints one JSON line {"ready":true,...} on stdout once the mount answers.
 * SIGUSR1: writes MemoryFs counters to `statsFile` (via a temp file + rename).
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
}

const config = JSON.parse(process.argv[2] ?? '{}') as RunnerConfig;
const logger = createLogger(config.logLevel ?? 'warn', false);
const fs = new MemoryFs(config.faults ?? {});
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
  void writeJson(config.statsFile, { ...fs.stats, utimensCalls: fs.utimensCalls, openHandles: fs.openHandles() });
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
