import { randomUUID } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Positions past this lose precision in a JS number. */
const SAFE_LIMIT = Number.MAX_SAFE_INTEGER;

const byDir = new Map<string, Promise<number>>();

/**
 * The largest size a file in `dir` can have (ext4: 16 TiB less a block), found once per directory
 * by growing an empty temp file with ftruncate, and never above what a JS number holds exactly.
 * Local copies refuse writes and sizes past it with EFBIG before they reach the disk: the file
 * system's own EFBIG would come from the write thread after the write was answered, and would
 * fail every later change of the copy.
 */
export function largestFileSize(dir: string): Promise<number> {
  let found = byDir.get(dir);
  if (found === undefined) {
    found = probe(dir);
    byDir.set(dir, found);
    found.catch(() => byDir.delete(dir));
  }
  return found;
}

async function probe(dir: string): Promise<number> {
  const path = join(dir, `.size-probe-${randomUUID()}`);
  const fh = await open(path, 'w', 0o600);
  try {
    let fits = 0;
    let tooBig = SAFE_LIMIT + 1;
    while (tooBig - fits > 1) {
      const size = fits + Math.floor((tooBig - fits) / 2);
      try {
        await fh.truncate(size);
        fits = size;
      } catch {
        tooBig = size;
      }
    }
    return fits;
  } finally {
    await fh.close();
    await unlink(path).catch(() => undefined);
  }
}
