/**
 * When the kernel is done with a mount. After a lazy unmount (`fusermount -uz`) the mount is gone
 * from /proc/mounts at once, but processes that had a file open or their working directory inside
 * still use it and still send requests; the kernel ends the connection only when the last of them
 * leaves. libfuse then stops reading and closes its /dev/fuse descriptor: that close, seen in
 * /proc/self/fd, is the moment nothing can send the daemon a request any more.
 */
import { readdir, readlink } from 'node:fs/promises';

const FD_DIR = '/proc/self/fd';
const DEVICE = '/dev/fuse';
const POLL_MS = 500;

/** This process's open descriptors of /dev/fuse. */
export async function fuseDeviceFds(): Promise<number[]> {
  const fds: number[] = [];
  for (const name of await readdir(FD_DIR).catch(() => [] as string[])) {
    if ((await readlink(`${FD_DIR}/${name}`).catch(() => '')) === DEVICE) fds.push(Number(name));
  }
  return fds;
}

/** Resolves once none of `fds` is /dev/fuse any more (closed, or reused for another file). */
export async function deviceClosed(fds: readonly number[]): Promise<void> {
  for (;;) {
    let open = false;
    for (const fd of fds) {
      if ((await readlink(`${FD_DIR}/${fd}`).catch(() => '')) === DEVICE) open = true;
    }
    if (!open) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
