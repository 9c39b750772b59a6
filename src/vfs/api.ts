/**
 * The filesystem model as the fuse layer sees it: path- and handle-based calls that resolve with
 * plain values and reject with `FsError` (errors.ts). Nothing here knows FUSE or HTTP.
 */

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export interface Attr {
  /** Type bits (S_IFDIR / S_IFREG / S_IFLNK) and permission bits. */
  readonly mode: number;
  readonly size: number;
  /** Times in milliseconds since the epoch. */
  readonly mtime: number;
  readonly atime: number;
  readonly ctime: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
}

export interface FsStats {
  readonly bsize: number;
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
  readonly namemax: number;
}

/** The largest file handle a FileSystem gives (the fuse layer uses the bit above: src/fuse/handles.ts). */
export const MAX_FILE_HANDLE = 2 ** 30 - 1;

/** Open flags the model cares about (values as in Linux `open(2)`). */
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

export interface FileSystem {
  getattr(path: string): Promise<Attr>;
  /** Attributes of an open handle (sizes of files being written). */
  fgetattr(path: string, fh: number): Promise<Attr>;
  readdir(path: string): Promise<string[]>;
  statfs(): Promise<FsStats>;

  /** A new handle, at most MAX_FILE_HANDLE (the fuse layer tags the kernel's copy: src/fuse/handles.ts). */
  open(path: string, flags: number): Promise<number>;
  create(path: string, mode: number, flags: number): Promise<number>;
  read(fh: number, into: Buffer, length: number, position: number): Promise<number>;
  /**
   * A read served at once from memory, copied before this returns: the bytes copied; or
   * undefined when it has to wait for the disk or the server (then `read` does it all: bytes
   * copied so far are copied again, and no read-ahead state has changed).
   */
  readNow(fh: number, into: Buffer, length: number, position: number): number | undefined;
  write(fh: number, data: Buffer, length: number, position: number): Promise<number>;
  /**
   * close(2) of one descriptor of the handle (may be called several times). It has nothing to do
   * for a handle opened read-only: the fuse layer answers those itself (src/fuse/handles.ts).
   */
  flush(fh: number): Promise<void>;
  /** Returns once Girder holds everything written through this handle. */
  fsync(fh: number): Promise<void>;
  /** Last close of the handle. */
  release(fh: number): Promise<void>;
  truncate(path: string, size: number): Promise<void>;
  ftruncate(fh: number, size: number): Promise<void>;

  unlink(path: string): Promise<void>;
  mkdir(path: string, mode: number): Promise<void>;
  rmdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** symlink(2): a link at `path` holding `target`. */
  symlink(target: string, path: string): Promise<void>;
  readlink(path: string): Promise<string>;
  /** Times in milliseconds since the epoch. */
  utimens(path: string, atime: number, mtime: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;

  getxattr(path: string, name: string): Promise<Buffer>;
  setxattr(path: string, name: string, value: Buffer): Promise<void>;
  listxattr(path: string): Promise<string[]>;
  removexattr(path: string, name: string): Promise<void>;

  /**
   * Bytes moved so far for `path` (filled from Girder, sent in uploads), or -1 when nothing moves
   * for it: an operation waiting on a transfer that still progresses is not given up on.
   */
  progressOf?(path: string): number;
  /** What the model is waiting on for `path`, for the log line of an operation given up on. */
  waitsOf?(path: string): Record<string, unknown>;
}
