import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { open, link, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { openUncached } from '../uncached-io.js';
import { FsError } from '../errors.js';
import { toFsError } from './fs-error.js';
import { abandoned, localWriter, type LocalWriter, type WriteFds } from './local-writes/index.js';
import type { UploadResult, UploadTarget } from './ports.js';

/** Positions past this lose precision in a JS number: refuse them rather than corrupt data. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

/**
 * The local copy of a file being written: a private temp file (0600, in the cache directory) that
 * every handle of the path shares, as they would share an inode. It lives while a handle has it
 * open or an upload of it is pending, and serves reads of the path meanwhile.
 */
export class LocalFile {
  /** Handles open on it (readers and writers). */
  openCount = 0;
  /** Written since the last hand-off to the upload queue. */
  dirty = false;
  /** Uploads handed off and not yet finished. */
  pendingUploads = 0;
  /** Settles when the newest hand-off has reached Girder (and its follow-ups are done). */
  lastUpload: Promise<UploadResult | undefined> = Promise.resolve(undefined);
  /** An mtime a program set (utimens), kept in Girder metadata once uploaded. */
  explicitMtime: number | undefined;
  mtime = Date.now();
  /** Unlinked while open: nothing more is uploaded. */
  unlinked = false;
  /** Why the newest upload failed, until one succeeds. */
  lastError: unknown;
  /** Version of the remote file this copy started from, to tell a change made elsewhere. */
  remoteVersion: string | undefined;
  /** Why a write or truncate of the temp file failed (e.g. ENOSPC): its bytes are not what the program wrote, so they are never uploaded. */
  failure: unknown;
  /** Bytes copied in from Girder so far, when it was opened for writing without O_TRUNC. */
  filled = 0;

  /**
   * The write thread keeps the SHA-512 of bytes [0, hashedUpTo) while the file is written front to
   * back (cp, rsync, editors), so a close needs no second pass over the file to hash it. Gone
   * after any other write.
   */
  private hashing = true;
  private hashedUpTo = 0;
  /** The file's ops on the write thread, and the newest write among them. */
  private readonly writeKey: number;
  private lastWrite = -1;

  /** The temp file is also the snapshot an upload reads: copy it before changing it. */
  private shared = false;
  private unsharing: Promise<void> | undefined;

  private constructor(
    private readonly dataDir: string,
    public path: string,
    public target: UploadTarget,
    private tempPath: string,
    private fd: FileHandle,
    /** The temp file opened again with O_DIRECT, for the aligned part of front-to-back writes. */
    private direct: FileHandle | undefined,
    public size: number,
    private readonly writer: LocalWriter,
    /** Names this file's uploads across renames (see UploadJob.key). */
    readonly key: string = randomUUID(),
  ) {
    this.writeKey = writer.register((err) => {
      this.failure ??= err;
    });
  }

  static async create(dataDir: string, path: string, target: UploadTarget, writer = localWriter()): Promise<LocalFile> {
    const { tempPath, fd, direct } = await newTemp(dataDir, writer);
    return new LocalFile(dataDir, path, target, tempPath, fd, direct, 0, writer);
  }

  /**
   * The local copy of a file whose upload the journal resumed after a restart: a second name for
   * the job's data file (which the queue keeps, and removes once uploaded), shared as after
   * snapshot(), so a write copies it first. `key` is the job's, so a new close uploads after it.
   */
  static async adopt(dataDir: string, path: string, target: UploadTarget, source: string, key: string, writer = localWriter()): Promise<LocalFile> {
    const tempPath = join(dataDir, `${randomUUID()}.data`);
    await link(source, tempPath);
    let fd: FileHandle | undefined;
    try {
      fd = await open(tempPath, 'r+');
      const st = await fd.stat();
      const local = new LocalFile(dataDir, path, target, tempPath, fd, undefined, st.size, writer, key);
      local.shared = true;
      local.hashing = false;
      local.mtime = Math.round(st.mtimeMs);
      return local;
    } catch (err) {
      await fd?.close().catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
      throw err;
    }
  }

  get isNew(): boolean {
    return this.target.kind !== 'file';
  }

  async read(into: Buffer, length: number, position: number): Promise<number> {
    if (position >= this.size) return 0;
    while (this.unsharing !== undefined) await this.unsharing;
    await this.writer.reached(this.lastWrite);
    const { bytesRead } = await this.fd.read(into, 0, Math.min(length, this.size - position), position);
    return bytesRead;
  }

  /**
   * Answered once the bytes are copied to the write thread, which writes them to the temp file: a
   * failure there is reported by a later write, and always by flush (close) and fsync.
   */
  async write(data: Buffer, length: number, position: number): Promise<number> {
    if (position + length > MAX_OFFSET) throw new FsError('EFBIG', `write past ${MAX_OFFSET}`);
    if (this.failure !== undefined) throw toFsError(this.failure);
    if (length <= 0) return 0;
    try {
      await this.unshare(this.size);
      if (data.length < length) throw abandoned(); // answered (EIO) while it waited: the kernel took its buffer back
      const hashed = this.hashing && position === this.hashedUpTo;
      if (hashed) this.hashedUpTo += length;
      else this.hashing = false;
      this.lastWrite = await this.writer.write(this.writeKey, this.fds(), position, data.subarray(0, length), hashed);
    } catch (err) {
      throw this.failed(err);
    }
    this.size = Math.max(this.size, position + length);
    this.touch();
    return length;
  }

  /** SHA-512 of the file once its writes are done, when they went front to back; throws the first write that failed. */
  async digest(): Promise<string | undefined> {
    return this.settled(this.hashing && this.hashedUpTo === this.size);
  }

  async truncate(size: number): Promise<void> {
    if (size > MAX_OFFSET) throw new FsError('EFBIG', `size past ${MAX_OFFSET}`);
    if (size > this.size) await this.checkRoom(size - this.size);
    try {
      await this.unshare(Math.min(size, this.size));
      await this.writer.barrier(this.writeKey, false);
      await this.fd.truncate(size);
      if (size === 0) {
        await this.writer.reset(this.writeKey);
        this.hashing = true;
        this.hashedUpTo = 0;
      } else if (size !== this.hashedUpTo && this.hashing) {
        await this.writer.unhash(this.writeKey);
        this.hashing = false;
      }
    } catch (err) {
      throw this.failed(err);
    }
    if (size === 0) this.failure = undefined; // nothing is left of what failed
    this.size = size;
    this.touch();
  }

  /**
   * A second name for the current bytes, which the upload queue takes over (and removes when
   * done). Later changes copy the bytes first, so the upload never sees them change under it.
   */
  async snapshot(): Promise<{ path: string; sha512: string | undefined }> {
    const sha512 = await this.digest();
    await this.fd.sync();
    const path = join(this.dataDir, `${randomUUID()}.upload`);
    await link(this.tempPath, path);
    this.shared = true;
    this.dirty = false;
    return { path, sha512 };
  }

  /** Every queued write is in the temp file: the file's hash if asked for, or its first write error. */
  private async settled(wantDigest: boolean): Promise<string | undefined> {
    while (this.unsharing !== undefined) await this.unsharing;
    const { digest, error } = await this.writer.barrier(this.writeKey, wantDigest);
    if (error !== undefined) this.failure ??= error;
    if (this.failure !== undefined) throw toFsError(this.failure);
    return digest;
  }

  /** Copy-on-write: move to a private copy of the first `keep` bytes before a change. */
  private async unshare(keep: number): Promise<void> {
    while (this.unsharing !== undefined) await this.unsharing;
    if (!this.shared) return;
    this.unsharing = (async () => {
      await this.writer.barrier(this.writeKey, false);
      const next = await newTemp(this.dataDir, this.writer);
      try {
        const chunk = Buffer.allocUnsafe(1 << 20);
        for (let pos = 0; pos < keep; ) {
          const { bytesRead } = await this.fd.read(chunk, 0, Math.min(chunk.length, keep - pos), pos);
          if (bytesRead === 0) break;
          await next.fd.write(chunk, 0, bytesRead, pos);
          pos += bytesRead;
        }
      } catch (err) {
        await next.fd.close().catch(() => undefined);
        await next.direct?.close().catch(() => undefined);
        await unlink(next.tempPath).catch(() => undefined);
        throw err;
      }
      await this.fd.close();
      await this.direct?.close();
      await unlink(this.tempPath).catch(() => undefined);
      this.fd = next.fd;
      this.direct = next.direct;
      this.tempPath = next.tempPath;
      this.shared = false;
    })();
    try {
      await this.unsharing;
    } finally {
      this.unsharing = undefined;
    }
  }

  async dispose(): Promise<void> {
    while (this.unsharing !== undefined) await this.unsharing.catch(() => undefined);
    await this.writer.forget(this.writeKey).catch(() => undefined);
    await this.fd.close().catch(() => undefined);
    await this.direct?.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }

  /** Its state, for the log line of an operation given up on. */
  describe(): Record<string, unknown> {
    return {
      size: this.size, openCount: this.openCount, dirty: this.dirty, pendingUploads: this.pendingUploads,
      filled: this.filled, unsharing: this.unsharing !== undefined, lastWrite: this.lastWrite, writeThread: this.writer.state(),
      ...(this.failure === undefined ? {} : { failure: String(this.failure) }),
    };
  }

  private fds(): WriteFds {
    return { fd: this.fd.fd, direct: this.direct?.fd ?? -1 };
  }

  /**
   * Growing by truncate costs no local space (the temp file is sparse) but every byte is uploaded:
   * refuse a size the cache disk could not hold, as `truncate -s 1T` on a small disk would fail.
   */
  private async checkRoom(bytes: number): Promise<void> {
    const fs = await statfs(this.dataDir);
    if (bytes > fs.bavail * fs.bsize) {
      throw new FsError('ENOSPC', `growing ${this.path} by ${bytes} bytes needs more than the cache disk's free space`);
    }
  }

  private failed(err: unknown): FsError {
    this.failure ??= err;
    return toFsError(err);
  }

  private touch(): void {
    this.dirty = true;
    this.mtime = Date.now();
    this.explicitMtime = undefined;
  }
}

/** A new empty temp file, and a direct descriptor of it when its file system and the write thread allow. */
async function newTemp(dataDir: string, writer: LocalWriter): Promise<{ tempPath: string; fd: FileHandle; direct: FileHandle | undefined }> {
  const tempPath = join(dataDir, `${randomUUID()}.data`);
  const fd = await open(tempPath, 'w+', 0o600);
  let direct: FileHandle | undefined;
  try {
    direct = await openUncached(tempPath, constants.O_WRONLY);
    if (direct !== undefined && !(await writer.canWriteDirect(direct.fd))) {
      await direct.close();
      direct = undefined;
    }
  } catch (err) {
    await direct?.close().catch(() => undefined);
    await fd.close().catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
  return { tempPath, fd, direct };
}
