/**
 * Types for fuse-native 2.2.6 (CommonJS, no types of its own), as read from its index.js and
 * fuse-native.c. Only src/fuse/ uses them.
 *
 * Callback conventions: the first argument is 0 or a negative errno; `read`, `write` answer the byte
 * count in that same first argument. Times in `Stat` are Dates or milliseconds since the epoch.
 */
declare module 'fuse-native' {
  namespace Fuse {
    type Callback = (code: number) => void;

    interface Stat {
      mode: number;
      uid: number;
      gid: number;
      size: number;
      nlink: number;
      atime: Date | number;
      mtime: Date | number;
      ctime: Date | number;
      dev?: number;
      ino?: number;
      rdev?: number;
      blksize?: number;
      blocks?: number;
    }

    interface Statfs {
      bsize: number;
      frsize: number;
      blocks: number;
      bfree: number;
      bavail: number;
      files: number;
      ffree: number;
      favail: number;
      fsid: number;
      flag: number;
      namemax: number;
    }

    /** Handlers fuse-native calls; those left undefined answer ENOSYS (getattr: EPERM). */
    interface Operations {
      init?(cb: Callback): void;
      access?(path: string, mode: number, cb: Callback): void;
      statfs?(path: string, cb: (code: number, stats?: Statfs) => void): void;
      getattr?(path: string, cb: (code: number, stat?: Stat) => void): void;
      fgetattr?(path: string, fd: number, cb: (code: number, stat?: Stat) => void): void;
      flush?(path: string, fd: number, cb: Callback): void;
      fsync?(path: string, datasync: number, fd: number, cb: Callback): void;
      fsyncdir?(path: string, datasync: number, fd: number, cb: Callback): void;
      readdir?(path: string, cb: (code: number, names?: string[], stats?: Stat[]) => void): void;
      truncate?(path: string, size: number, cb: Callback): void;
      ftruncate?(path: string, fd: number, size: number, cb: Callback): void;
      /** Milliseconds. With scripts/build-fuse-native.sh's addon, UINT64_MAX means "omit". */
      utimens?(path: string, atime: number, mtime: number, cb: Callback): void;
      readlink?(path: string, cb: (code: number, linkname?: string) => void): void;
      chown?(path: string, uid: number, gid: number, cb: Callback): void;
      chmod?(path: string, mode: number, cb: Callback): void;
      mknod?(path: string, mode: number, dev: number, cb: Callback): void;
      /** `value` is the kernel's buffer: valid only until cb is called. */
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Callback): void;
      getxattr?(path: string, name: string, position: number, cb: (code: number, value?: Buffer | null) => void): void;
      listxattr?(path: string, cb: (code: number, names?: string[]) => void): void;
      removexattr?(path: string, name: string, cb: Callback): void;
      open?(path: string, flags: number, cb: (code: number, fd?: number) => void): void;
      opendir?(path: string, flags: number, cb: (code: number, fd?: number) => void): void;
      /** `buffer` is the kernel's buffer: fill it, then cb(bytesRead) or cb(-errno). */
      read?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (result: number) => void): void;
      /** `buffer` is the kernel's buffer: valid only until cb is called; cb(bytesWritten) or cb(-errno). */
      write?(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (result: number) => void): void;
      release?(path: string, fd: number, cb: Callback): void;
      releasedir?(path: string, fd: number, cb: Callback): void;
      /** fuse-native does not pass create's open flags. */
      create?(path: string, mode: number, cb: (code: number, fd?: number) => void): void;
      unlink?(path: string, cb: Callback): void;
      rename?(src: string, dest: string, cb: Callback): void;
      link?(src: string, dest: string, cb: Callback): void;
      symlink?(src: string, dest: string, cb: Callback): void;
      mkdir?(path: string, mode: number, cb: Callback): void;
      rmdir?(path: string, cb: Callback): void;
    }

    type OperationName = keyof Operations;

    /** ms; false: none; or per operation with `default` for the rest. fuse-native's default is 15000. */
    type Timeout = number | false | ({ default?: number } & { [op in OperationName]?: number | false });

    interface Options {
      timeout?: Timeout;
      force?: boolean;
      mkdir?: boolean;
      debug?: boolean;
      // The -o options fuse-native itself knows; girder-mount builds its own string instead.
      allowOther?: boolean;
      defaultPermissions?: boolean;
      maxRead?: number;
      fsname?: string;
      subtype?: string;
      autoCache?: boolean;
      uid?: number;
      gid?: number;
      entryTimeout?: number;
      attrTimeout?: number;
    }

    /** The first argument of fuse-native's internal `_op_*` methods: answers the kernel. */
    type Signal = (code: number, ...values: unknown[]) => void;
  }

  class Fuse {
    constructor(mnt: string, ops: Fuse.Operations, opts?: Fuse.Options);
    readonly mnt: string;
    readonly ops: Fuse.Operations;
    readonly opts: Fuse.Options;
    /** Native per-mount state, the second argument of the binding's fuse_native_unmount. */
    protected _thread: Buffer | null;

    /** Calls back once the kernel has sent FUSE_INIT (the mount answers), or with the error. */
    mount(cb: (err: Error | null) => void): void;
    /** fuse-native's own unmount: `fusermount -uz` (lazy), then releases native state. */
    unmount(cb: (err: Error | null) => void): void;

    /** The `-o...` argument handed to libfuse as is ('' for none). */
    protected _fuseOptions(): string;
    protected _close(cb: (err: Error | null) => void): void;
    protected _op_fgetattr(signal: Fuse.Signal, path: string, fd: number): void;
    protected _op_getxattr(signal: Fuse.Signal, path: string, name: string, value: Buffer, position: number): void;
    protected _op_listxattr(signal: Fuse.Signal, path: string, list: Buffer): void;

    static unmount(mnt: string, cb: (err: Error | null) => void): void;
  }

  export = Fuse;
}
