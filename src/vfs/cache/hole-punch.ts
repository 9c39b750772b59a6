import { execFile } from 'node:child_process';

/**
 * Free the disk space of a byte range inside a file, keeping its size (FALLOC_FL_PUNCH_HOLE).
 * Node has no fallocate(2), so this runs util-linux `fallocate`; the cache calls it rarely, for
 * batches of evicted blocks coalesced into ranges.
 */
export function punchHole(path: string, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'fallocate',
      ['--punch-hole', '--offset', String(offset), '--length', String(length), '--', path],
      { timeout: 60_000 },
      (err) => (err ? reject(err) : resolve()),
    );
  });
}
