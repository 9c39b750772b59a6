/**
 * The file handles the kernel holds: the FileSystem's own, with READ_ONLY_FH set on those opened
 * read-only. The patched addon (scripts/build-fuse-native.sh, 8.) answers their flush in C: the
 * kernel sends one at every close(2), and flushing a handle opened read-only has nothing to do
 * (FileSystem.flush). Without the patch the flush comes here and does nothing, as before.
 */
import { MAX_FILE_HANDLE, O_ACCMODE, O_RDONLY } from '../vfs/api.js';

export const READ_ONLY_FH = MAX_FILE_HANDLE + 1;

/** The handle the kernel gets for the FileSystem's `fh`, opened with `flags`. */
export function kernelHandle(fh: number, flags: number): number {
  if (!Number.isInteger(fh) || fh < 0 || fh > MAX_FILE_HANDLE) throw new Error(`file handle ${fh} is outside 0..${MAX_FILE_HANDLE}`);
  return (flags & O_ACCMODE) === O_RDONLY ? fh | READ_ONLY_FH : fh;
}

/** The FileSystem's handle behind the kernel's. */
export function fsHandle(kernelFh: number): number {
  return kernelFh & ~READ_ONLY_FH;
}
