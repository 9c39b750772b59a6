/** Unmounting a FUSE mount with the fusermount helper (no synchronous calls: the mount may be ours). */
import { execFile } from 'node:child_process';

export interface UnmountResult {
  readonly ok: boolean;
  /** EBUSY: a process has a file open or its working directory inside. */
  readonly busy: boolean;
  /** fusermount's message when it failed. */
  readonly message: string;
}

/** `fusermount -u` (or `-uz` when lazy) on an absolute path. */
export function fusermountUnmount(mountpoint: string, lazy: boolean): Promise<UnmountResult> {
  const args = ['-u', ...(lazy ? ['-z'] : []), '--', mountpoint];
  return new Promise((resolve) => {
    execFile('fusermount', args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (!err) {
        resolve({ ok: true, busy: false, message: '' });
        return;
      }
      const message = String(stderr).trim() || err.message;
      resolve({ ok: false, busy: /busy/i.test(message), message });
    });
  });
}
