/**
 * fuse-native's handler object, built from a FileSystem (src/vfs/api.ts).
 *
 * Every handler answers exactly once: a value, the FsError's errno, or EIO (logged) for anything
 * unexpected; nothing thrown here reaches fuse-native (a throw there kills the daemon and leaves a
 * dead mount). Buffers fuse-native hands over belong to the kernel request and are detached once
 * answered: `read` fills the given buffer in place (only synchronously: see read-buffers.ts),
 * `write` passes it on (the FileSystem must copy what it keeps past its promise), `setxattr` copies
 * the value.
 */
import { constants as fsConstants } from 'node:fs';
import type Fuse from 'fuse-native';
import { FsError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Attr, FileSystem, FsStats } from '../vfs/api.js';
import { EPERM, errnoOf } from './errno.js';
import { fsHandle, kernelHandle } from './handles.js';
import { OpWatchdog, type OpBounds } from './op-watchdog.js';
import { ReadBuffers } from './read-buffers.js';

/** fuse-native does not pass create()'s open flags to JavaScript; a created file is opened read-write. */
export const CREATE_FLAGS = fsConstants.O_CREAT | fsConstants.O_RDWR;

/** The patched addon sends UTIME_OMIT as UINT64_MAX ms; no real time comes near 2^53 ms. */
const OMITTED_TIME = Number.MAX_SAFE_INTEGER;
/** chown's "leave unchanged" ((uid_t)-1), as fuse-native's uint32 conversion delivers it. */
const UNCHANGED_ID = 0xffffffff;
const UINT32_MAX = 0xffffffff;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

type Reply<W> = [code: number, value?: W];

/** Failures that mean trouble (the server, the cache disk), not an answer such as ENOENT: logged at warn. */
const TROUBLE = new Set(['EIO', 'ESTALE', 'ENOSPC', 'ETIMEDOUT']);
/**
 * The same failure of the same path again within this long is logged at debug, not warn: the
 * kernel reads a page again right after its read-ahead failed, and the reads of one file in flight
 * fail together. One line says it.
 */
const REPEAT_QUIET_MS = 1000;

export interface OperationsOptions {
  /** Answer EIO to an operation that passes its time bound (see op-watchdog.ts); none: no bound. */
  readonly bounds?: OpBounds;
}

export interface Operations extends Fuse.Operations {
  /** Operations waiting for their answer (undefined without bounds). */
  readonly watchdog: OpWatchdog | undefined;
}

export function buildOperations(fs: FileSystem, logger: Logger, options: OperationsOptions = {}): Operations {
  const watchdog = options.bounds === undefined ? undefined : new OpWatchdog(options.bounds, logger);
  const readBuffers = new ReadBuffers();
  /** When a failure (path and message) was last logged at warn. */
  const warned = new Map<string, number>();

  /** Whether this failure of `path` was logged at warn less than REPEAT_QUIET_MS ago (else note it now). */
  function repeated(path: string, message: string): boolean {
    const now = Date.now();
    const key = `${path}\0${message}`;
    const last = warned.get(key);
    if (last !== undefined && now - last < REPEAT_QUIET_MS) return true;
    if (warned.size >= 256) {
      for (const [k, at] of warned) if (now - at >= REPEAT_QUIET_MS) warned.delete(k);
    }
    warned.set(key, now);
    return false;
  }

  /** The errno for a failure; logs what is not an FsError (a bug or a surprise below us). */
  function codeFor(op: string, path: string, err: unknown): number {
    if (err instanceof FsError) {
      if (!TROUBLE.has(err.errno)) {
        if (logger.isLevelEnabled('trace')) logger.trace({ op, path, errno: err.errno }, 'fuse op failed');
      } else if (repeated(path, err.message)) {
        logger.debug({ op, path, errno: err.errno, err: err.message }, 'operation failed (again)');
      } else {
        logger.warn({ op, path, errno: err.errno, err: err.message }, 'operation failed');
      }
    } else {
      logger.error({ op, path, err }, 'unexpected error in filesystem operation; answered EIO');
    }
    return errnoOf(err);
  }

  /**
   * Runs one operation and answers `cb` exactly once, whatever happens: with its result, its
   * error, or EIO once it passes its time bound. `transfers`: it may wait on a fill or an upload,
   * whose progress extends the bound.
   */
  function run<V, W = never>(
    op: string,
    path: string,
    detail: Record<string, unknown> | undefined,
    cb: (code: number, value?: W) => void,
    work: () => Promise<V>,
    reply: (value: V) => Reply<W> = () => [0],
    transfers = false,
  ): void {
    const tracing = logger.isLevelEnabled('trace');
    const started = tracing ? performance.now() : 0;
    if (tracing) logger.trace({ op, path, ...detail }, 'fuse op');
    let answered = false;
    let untrack: (() => void) | undefined;
    const answer = (code: number, value?: W): void => {
      if (answered) return;
      answered = true;
      untrack?.();
      if (tracing) logger.trace({ op, path, code, ms: Math.round((performance.now() - started) * 10) / 10 }, 'fuse op done');
      cb(code, value);
    };
    untrack = watchdog?.track(op, path, detail, answer, transfers);
    const fail = (err: unknown): void => {
      // Answered EIO by the watchdog, which logged it: the work failing later is no second failure.
      if (answered) logger.debug({ op, path, err: String(err) }, 'operation failed after it was answered EIO');
      else answer(codeFor(op, path, err));
    };
    let pending: Promise<V>;
    try {
      pending = Promise.resolve(work());
    } catch (err) {
      fail(err);
      return;
    }
    pending
      .then((value) => {
        if (answered) return; // given up on by the watchdog
        let result: Reply<W>;
        try {
          result = reply(value);
        } catch (err) {
          fail(err);
          return;
        }
        answer(result[0], result[1]);
      }, fail)
      .catch((err: unknown) => logger.error({ op, path, err }, 'error while answering the kernel'));
  }

  return {
    watchdog,
    getattr(path, cb) {
      run('getattr', path, undefined, cb, () => fs.getattr(path), (attr) => [0, toStat(attr)]);
    },
    fgetattr(path, fd, cb) {
      run('fgetattr', path, { fh: fd }, cb, () => fs.fgetattr(path, fsHandle(fd)), (attr) => [0, toStat(attr)]);
    },
    readdir(path, cb) {
      run('readdir', path, undefined, cb, () => fs.readdir(path), (names) => [0, ['.', '..', ...names]]);
    },
    statfs(path, cb) {
      run('statfs', path, undefined, cb, () => fs.statfs(), (stats) => [0, toStatfs(stats)]);
    },

    open(path, flags, cb) {
      run('open', path, { flags }, cb, () => fs.open(path, flags), (fh) => [0, kernelHandle(fh, flags)], true);
    },
    create(path, mode, cb) {
      run('create', path, { mode }, cb, () => fs.create(path, mode, CREATE_FLAGS), (fh) => [0, kernelHandle(fh, CREATE_FLAGS)]);
    },
    read(path, fd, buffer, length, position, cb) {
      // Bytes already in memory go straight into the kernel's buffer: nothing answers in between.
      let now: number | undefined;
      try {
        now = fs.readNow(fsHandle(fd), buffer, length, position);
      } catch (err) {
        logger.error({ op: 'read', path, err }, 'unexpected error serving a read from memory; reading it the other way');
      }
      if (now !== undefined) {
        let code: number;
        try {
          code = checkCount(now, length);
        } catch (err) {
          code = codeFor('read', path, err);
        }
        if (logger.isLevelEnabled('trace')) logger.trace({ op: 'read', path, fh: fd, length, position, code }, 'fuse op served from memory');
        cb(code);
        return;
      }
      // The rest waits, filling a buffer of ours, copied into the kernel's once done (read-buffers.ts says why).
      const into = readBuffers.take(length);
      run('read', path, { fh: fd, length, position }, cb, () => fs.read(fsHandle(fd), into, length, position), (bytes) => {
        const n = checkCount(bytes, length);
        into.copy(buffer, 0, 0, n);
        readBuffers.give(into);
        return [n];
      });
    },
    write(path, fd, buffer, length, position, cb) {
      run('write', path, { fh: fd, length, position }, cb,
        () => fs.write(fsHandle(fd), buffer, length, position), (bytes) => [checkCount(bytes, length)]);
    },
    flush(path, fd, cb) {
      run('flush', path, { fh: fd }, cb, () => fs.flush(fsHandle(fd)), undefined, true);
    },
    fsync(path, datasync, fd, cb) {
      run('fsync', path, { fh: fd, datasync }, cb, () => fs.fsync(fsHandle(fd)), undefined, true);
    },
    release(path, fd, cb) {
      run('release', path, { fh: fd }, cb, () => fs.release(fsHandle(fd)), undefined, true);
    },
    truncate(path, size, cb) {
      run('truncate', path, { size }, cb, () => fs.truncate(path, size), undefined, true);
    },
    ftruncate(path, fd, size, cb) {
      run('ftruncate', path, { fh: fd, size }, cb, () => fs.ftruncate(fsHandle(fd), size));
    },

    unlink(path, cb) {
      run('unlink', path, undefined, cb, () => fs.unlink(path));
    },
    mkdir(path, mode, cb) {
      run('mkdir', path, { mode }, cb, () => fs.mkdir(path, mode));
    },
    rmdir(path, cb) {
      run('rmdir', path, undefined, cb, () => fs.rmdir(path));
    },
    rename(src, dest, cb) {
      run('rename', src, { dest }, cb, () => fs.rename(src, dest));
    },
    symlink(target, path, cb) {
      run('symlink', path, { target }, cb, () => fs.symlink(target, path));
    },
    readlink(path, cb) {
      run('readlink', path, undefined, cb, () => fs.readlink(path), (target) => [0, target]);
    },
    // Girder has no hard links or special files: EPERM, the answer POSIX gives for a file system
    // without them (unimplemented, they were ENOSYS). libfuse creates regular files with create, not mknod.
    link(_src, _dest, cb) {
      cb(EPERM);
    },
    mknod(_path, _mode, _dev, cb) {
      cb(EPERM);
    },
    utimens(path, atime, mtime, cb) {
      run('utimens', path, { atime, mtime }, cb, async () => {
        let a = atime;
        let m = mtime;
        if (a >= OMITTED_TIME || m >= OMITTED_TIME) {
          const attr = await fs.getattr(path);
          if (a >= OMITTED_TIME) a = attr.atime;
          if (m >= OMITTED_TIME) m = attr.mtime;
        }
        await fs.utimens(path, a, m);
      });
    },
    chmod(path, mode, cb) {
      run('chmod', path, { mode }, cb, () => fs.chmod(path, mode));
    },
    chown(path, uid, gid, cb) {
      run('chown', path, { uid, gid }, cb, async () => {
        let u = uid;
        let g = gid;
        if (u === UNCHANGED_ID || g === UNCHANGED_ID) {
          const attr = await fs.getattr(path);
          if (u === UNCHANGED_ID) u = attr.uid;
          if (g === UNCHANGED_ID) g = attr.gid;
        }
        await fs.chown(path, u, g);
      });
    },

    getxattr(path, name, _position, cb) {
      run('getxattr', path, { name }, cb, () => fs.getxattr(path, name), (value) => [0, value]);
    },
    setxattr(path, name, value, _position, flags, cb) {
      // The kernel's buffer goes away once we answer; the FileSystem may keep the value longer.
      const copy = Buffer.from(value);
      run('setxattr', path, { name, flags, size: copy.length }, cb, async () => {
        if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
          const exists = await fs.getxattr(path, name).then(() => true, (err: unknown) => {
            if (err instanceof FsError && err.errno === 'ENODATA') return false;
            throw err;
          });
          if (exists && flags & XATTR_CREATE) throw new FsError('EEXIST', `xattr ${name} exists`);
          if (!exists && flags & XATTR_REPLACE) throw new FsError('ENODATA', `no xattr ${name}`);
        }
        await fs.setxattr(path, name, copy);
      }, () => [0], true); // a file just closed gets its metadata once uploaded
    },
    listxattr(path, cb) {
      run('listxattr', path, undefined, cb, () => fs.listxattr(path), (names) => [0, names]);
    },
    removexattr(path, name, cb) {
      run('removexattr', path, { name }, cb, () => fs.removexattr(path, name));
    },
  };
}

/** Attr (ms times) -> fuse-native's stat (ms times, clamped to what its uint32 pairs can carry). */
export function toStat(attr: Attr): Fuse.Stat {
  const size = Math.max(0, Math.floor(attr.size));
  return {
    mode: attr.mode,
    uid: attr.uid,
    gid: attr.gid,
    size,
    nlink: Math.max(1, attr.nlink),
    atime: toMs(attr.atime),
    mtime: toMs(attr.mtime),
    ctime: toMs(attr.ctime),
    blksize: 4096,
    blocks: Math.ceil(size / 512),
  };
}

export function toStatfs(stats: FsStats): Fuse.Statfs {
  return {
    bsize: toUint32(stats.bsize),
    frsize: toUint32(stats.bsize),
    blocks: toUint32(stats.blocks),
    bfree: toUint32(stats.bfree),
    bavail: toUint32(stats.bavail),
    files: toUint32(stats.files),
    ffree: toUint32(stats.ffree),
    favail: toUint32(stats.ffree),
    fsid: 0,
    flag: 0,
    namemax: toUint32(stats.namemax),
  };
}

function toMs(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? Math.floor(ms) : 0;
}

function toUint32(n: number): number {
  return Number.isFinite(n) ? Math.min(UINT32_MAX, Math.max(0, Math.floor(n))) : 0;
}

function checkCount(bytes: number, length: number): number {
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > length) {
    throw new Error(`byte count ${bytes} outside 0..${length}`);
  }
  return bytes;
}

