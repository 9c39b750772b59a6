import { chmod, mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, errorMessage } from './errors.js';

export interface CacheDirs {
  readonly root: string;
  /** Write buffers of files being written. */
  readonly data: string;
  /** The upload journal. */
  readonly journal: string;
  /** The read block cache. */
  readonly blocks: string;
}

/** Create (or tighten to 0700) the private cache directory and its parts. */
export async function prepareCacheDir(root: string): Promise<CacheDirs> {
  const dirs = { root, data: join(root, 'data'), journal: join(root, 'journal'), blocks: join(root, 'read-cache') };
  try {
    for (const d of [root, dirs.data, dirs.journal, dirs.blocks]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chmod(d, 0o700);
    }
  } catch (err) {
    throw new UsageError(`cannot use cache directory ${root}: ${errorMessage(err)}; pass --cache-dir <writable dir>`, 1);
  }
  return dirs;
}

/**
 * One daemon per cache directory: two would share a journal and upload each other's files.
 * Resolves with a function that releases the lock.
 */
export async function lockCacheDir(dirs: CacheDirs): Promise<() => Promise<void>> {
  const path = join(dirs.root, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = await open(path, 'wx', 0o600);
      await fd.writeFile(String(process.pid));
      await fd.close();
      return () => unlink(path).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && (await isRunningDaemon(pid))) {
        throw new UsageError(`cache directory ${dirs.root} is in use by another girder-mount (pid ${pid}); give each mount its own --cache-dir`, 1);
      }
      await unlink(path).catch(() => undefined);
    }
  }
  throw new UsageError(`cannot lock cache directory ${dirs.root}; remove ${path} if no girder-mount uses it`, 1);
}

/**
 * Whether `pid` is a live girder-mount: not a zombie of a crashed one, and not another program
 * that got the pid after a reboot.
 */
async function isRunningDaemon(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
    return /girder-mount|cli\.js/.test(cmdline);
  } catch {
    return false;
  }
}

/** Write buffers of files never closed before a crash (closed ones are in the journal). */
export async function removeOrphans(dataDir: string, keep: ReadonlySet<string>): Promise<void> {
  for (const name of await readdir(dataDir)) {
    const path = join(dataDir, name);
    if (!keep.has(path)) await unlink(path).catch(() => undefined);
  }
}
