/**
 * Uncached I/O (O_DIRECT) for the big sequential streams of written files: the bytes go between the
 * disk and a buffer of ours without passing through the page cache. A file staged on the way to
 * Girder is written once and read once, so caching it only takes memory from everything else (and
 * on a VM whose freed memory goes back to the host, each new cache page costs a host fault).
 * ("Direct" in this code base means the socket transport, src/girder/direct-request.ts.)
 *
 * The kernel wants the file position, the length and the buffer's address aligned. JavaScript
 * cannot see an address, so a buffer's aligned offset is found once by trial: a misaligned
 * transfer fails with EINVAL and does nothing.
 */
import { constants, type PathLike } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** Position and length granularity of uncached transfers (a page: covers any logical block size here). */
export const UNCACHED_ALIGN = 4096;
/** Address granularity tried when looking for a buffer's aligned offset. */
const ADDRESS_STEP = 16;

/** The file opened with O_DIRECT, or undefined where its file system has no O_DIRECT (tmpfs). */
export async function openUncached(path: PathLike, flags: number): Promise<FileHandle | undefined> {
  try {
    return await open(path, flags | constants.O_DIRECT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

/**
 * The first offset into `buf` (below UNCACHED_ALIGN) from which `transfer` of UNCACHED_ALIGN bytes
 * succeeds, or undefined when none does. `transfer` must only throw EINVAL for misalignment.
 */
export async function alignedOffset(buf: Uint8Array, transfer: (view: Uint8Array) => Promise<unknown>): Promise<number | undefined> {
  for (let off = 0; off + UNCACHED_ALIGN <= buf.byteLength && off < UNCACHED_ALIGN; off += ADDRESS_STEP) {
    try {
      await transfer(buf.subarray(off, off + UNCACHED_ALIGN));
      return off;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
  }
  return undefined;
}

export function isAligned(n: number): boolean {
  return n % UNCACHED_ALIGN === 0;
}

/** How many of `length` bytes written at `position` can go direct: the whole blocks, when it starts on one. */
export function alignedLength(position: number, length: number): number {
  return isAligned(position) ? length - (length % UNCACHED_ALIGN) : 0;
}
