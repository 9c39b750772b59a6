/** Mounting a FileSystem with fuse-native, and unmounting it. */
import { FsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { FileSystem } from '../vfs/api.js';
import { GirderFuse } from './fuse-class.js';
import { deviceClosed, fuseDeviceFds } from './fuse-device.js';
import { fusermountUnmount } from './fusermount.js';
import { fuseOptionString, type MountOptions } from './mount-options.js';
import { addonPath, isPatchedAddon } from './native-addon.js';
import type { OpBounds, PendingOp } from './op-watchdog.js';
import { buildOperations } from './ops.js';
import { isFuseType, isMounted, mountsAt } from './proc-mounts.js';

export type { MountOptions } from './mount-options.js';

export interface FuseMount {
  /** Absolute path of the mount. */
  readonly mountpoint: string;
  /** False when fuse-native's unpatched prebuild is loaded (utimens sets mtime to atime). */
  readonly utimensFixed: boolean;
  /**
   * Unmounts (fusermount -u) and resolves once the kernel has let go. If a process still uses the
   * mount, rejects with FsError EBUSY and the mount stays. Resolves at once if it is already gone.
   */
  unmount(): Promise<void>;
  /**
   * Lazy unmount (fusermount -uz): gone from the file system tree at once, while the processes
   * that have a file open or their working directory inside keep using it, and the daemon keeps
   * answering them, until the last leaves (`released`).
   */
  detach(): Promise<void>;
  /**
   * Resolves when the kernel has ended the connection: after an unmount, after a detach once the
   * last user left, or after an unmount from outside. No request can come after it.
   */
  readonly released: Promise<void>;
  /** Whether /proc/mounts still lists this mount (false after an outside `fusermount -u`). */
  isMounted(): Promise<boolean>;
  /** Operations the kernel is waiting on now (empty without bounds). */
  pendingOps(): PendingOp[];
}

/**
 * Mounts `fs` at `mountpoint` (call prepareMountpoint first) and resolves once the kernel has
 * initialised the connection, i.e. the mount answers. Every operation is answered within `bounds`
 * (op-watchdog.ts); fuse-native's own timeouts (ETIMEDOUT after 15 s by default) are off.
 */
export async function mountFuse(
  fs: FileSystem,
  mountpoint: string,
  options: MountOptions,
  logger: Logger,
  bounds?: OpBounds,
): Promise<FuseMount> {
  const optionString = fuseOptionString(options);
  const utimensFixed = isPatchedAddon();
  if (!utimensFixed) {
    logger.warn({ addon: addonPath() },
      'fuse-native addon lacks the girder-mount patch (mtime set through the mount becomes atime, writes are slower); run scripts/build-fuse-native.sh');
  }
  const ops = buildOperations(fs, logger, bounds === undefined ? {} : { bounds });
  const fuse = new GirderFuse(mountpoint, ops, { timeout: false }, optionString);
  const path = fuse.mnt;
  const before = (await mountsAt(path)).length;
  const fdsBefore = new Set(await fuseDeviceFds());
  logger.debug({ mountpoint: path, options: optionString }, 'mounting');
  try {
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  } catch (err) {
    await clearFailedMount(path, before, logger);
    throw new Error(`FUSE mount at ${path} failed: ${errorMessage(err)}${mountHint(options, err)}`, { cause: err });
  }
  const device = (await fuseDeviceFds()).filter((fd) => !fdsBefore.has(fd));
  // Without /proc (never seen on Linux), the mount leaving /proc/mounts has to do.
  const released = (device.length > 0 ? deviceClosed(device) : goneFromProcMounts(path)).then(async () => {
    // fuse-native's native state (its async handle keeps the event loop alive) goes with the connection.
    await new Promise<void>((resolve) => fuse.unmount(() => resolve()));
    logger.debug({ mountpoint: path }, 'the kernel released the mount');
  });

  let unmounting: Promise<void> | undefined;
  const unmount = async (lazy: boolean): Promise<void> => {
    const result = await fusermountUnmount(path, lazy);
    if (!result.ok) {
      if (result.busy) {
        throw new FsError('EBUSY',
          `cannot unmount ${path}: it is busy (a process has a file open or its working directory there); ` +
          `close those, or unmount lazily (fusermount -uz ${path})`);
      }
      if (await isMounted(path)) throw new Error(`cannot unmount ${path}: ${result.message}`);
      logger.debug({ mountpoint: path }, 'mount was already gone');
    }
    if (!lazy) await released;
    logger.debug({ mountpoint: path, lazy }, lazy ? 'detached' : 'unmounted');
  };
  // One attempt at a time; after a failure (EBUSY) the next call tries again.
  const once = (lazy: boolean): Promise<void> => (unmounting ??= unmount(lazy).finally(() => (unmounting = undefined)));
  return {
    mountpoint: path,
    utimensFixed,
    unmount: () => once(false),
    detach: () => once(true),
    released,
    async isMounted(): Promise<boolean> {
      return isMounted(path);
    },
    pendingOps(): PendingOp[] {
      return ops.watchdog?.list() ?? [];
    },
  };
}

async function goneFromProcMounts(path: string): Promise<void> {
  while (await isMounted(path)) await new Promise((resolve) => setTimeout(resolve, 1000));
}

/** fuse-native says only "fuse failed" when libfuse refuses; libfuse printed why on stderr. */
function mountHint(options: MountOptions, err: unknown): string {
  if (errorMessage(err) !== 'fuse failed') return '';
  if (options.allowOther && process.getuid?.() !== 0) {
    return ' (allow_other needs `user_allow_other` in /etc/fuse.conf; libfuse\'s own message is on stderr)';
  }
  return ' (libfuse\'s own message is on stderr)';
}

/** libfuse fails some errors (e.g. a bad option) after the kernel mount exists: take it away again. */
async function clearFailedMount(path: string, before: number, logger: Logger): Promise<void> {
  const after = await mountsAt(path);
  if (after.length <= before || !after.some((m) => isFuseType(m.type))) return;
  const result = await fusermountUnmount(path, true);
  if (result.ok) logger.warn({ mountpoint: path }, 'removed the mount a failed FUSE start left behind');
  else logger.error({ mountpoint: path, reason: result.message }, 'could not remove the mount a failed FUSE start left behind');
}
