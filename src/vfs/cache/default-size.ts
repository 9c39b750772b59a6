import { promises as fsp } from 'node:fs';
import path from 'node:path';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Share of the free space the cache takes by default, and the bounds around it. */
const FREE_SHARE = 0.1;
const MAX_DEFAULT = 20 * GiB;
const MIN_DEFAULT = 256 * MiB;

/**
 * The default `--cache-max-size`: 10% of the space free to unprivileged users on the filesystem
 * holding `dir` (or its nearest existing parent), at most 20 GiB, at least 256 MiB (or half the
 * free space when even that is short).
 */
export async function defaultCacheMaxBytes(dir: string): Promise<number> {
  let at = path.resolve(dir);
  for (;;) {
    try {
      const fs = await fsp.statfs(at);
      const free = fs.bavail * fs.bsize;
      const bytes = Math.min(MAX_DEFAULT, Math.max(free * FREE_SHARE, Math.min(MIN_DEFAULT, free / 2)));
      return Math.max(MiB, Math.floor(bytes / MiB) * MiB);
    } catch (err) {
      const parent = path.dirname(at);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === at) throw err;
      at = parent;
    }
  }
}
