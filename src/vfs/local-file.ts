import { randomUUID } from 'node:crypto';
import { open, link, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FsError } from '../errors.js';
import { toFsError } from './fs-error.js';
import { abandoned, localWriter, type LocalWriter, type WriteFds } from './local-writes/index.js';
import type { FileDoc } from '../girder/types.js';
import type { ReadSession, UploadTarget } from './ports.js';
import { largestFileSize } from './largest-file.js';
import { newTemp, newTempWith } from './temp-file.js';

/** Copying a remote file in goes in steps of this many bytes. */
const FILL_CHUNK = 4 << 20;

/**
 * The local copy of a file being written: a private temp file (0600, in the cache directory) that
 * every handle of the path shares, as they would share an inode. It lives while a handle has it
 * open or an upload of it is pending, and serves reads of the path meanwhile. Its path, who uses it
 * and when it goes are OpenFiles' (open-files.ts); its bytes and what they are, this class's.
 */
export class LocalFile {
  // Read by others through the getters below, changed only here (and through its verbs).
  private changed = false;
  private programMtime: number | undefined;
  /** Executable as programs see it, and as the Girder item holds it (mode-meta.ts). */
  private exec = false;
  private storedExec = false;
  private modified = Date.now();
  private removed = false;
  private uploadError: unknown;
  private startVersion: string | undefined;
  private writeFailure: unknown;
  private copiedIn = 0;

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
    /** Its mount path (OpenFiles moves it). */
    private where: string,
    private uploadTarget: UploadTarget,
    private tempPath: string,
    private fd: FileHandle,
    /** The temp file opened again with O_DIRECT, for the aligned part of front-to-back writes. */
    private direct: FileHandle | undefined,
    private length: number,
    private readonly writer: LocalWriter,
    /** The largest size the temp file can have (largest-file.ts). */
    private readonly maxSize: number,
    /** Names this file's uploads across renames (see UploadJob.key). */
    readonly key: string = randomUUID(),
  ) {
    this.writeKey = writer.register((err) => {
      this.writeFailure ??= err;
    });
  }

  static async create(dataDir: string, path: string, target: UploadTarget, writer = localWriter()): Promise<LocalFile> {
    const maxSize = await largestFileSize(dataDir);
    const { tempPath, fd, direct } = await newTemp(dataDir, writer);
    return new LocalFile(dataDir, path, target, tempPath, fd, direct, 0, writer, maxSize);
  }

  /**
   * The local copy of a file whose upload the journal resumed after a restart: a second name for
   * the job's data file (which the queue keeps, and removes once uploaded), shared as after
   * snapshot(), so a write copies it first. `key` is the job's, so a new close uploads after it.
   */
  static async adopt(dataDir: string, path: string, target: UploadTarget, source: string, key: string, writer = localWriter()): Promise<LocalFile> {
    const maxSize = await largestFileSize(dataDir);
    const tempPath = join(dataDir, `${randomUUID()}.data`);
    await link(source, tempPath);
    let fd: FileHandle | undefined;
    try {
      fd = await open(tempPath, 'r+');
      const st = await fd.stat();
      const local = new LocalFile(dataDir, path, target, tempPath, fd, undefined, st.size, writer, maxSize, key);
      local.shared = true;
      local.hashing = false;
      local.modified = Math.round(st.mtimeMs);
      return local;
    } catch (err) {
      await fd?.close().catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
      throw err;
    }
  }

  get path(): string {
    return this.where;
  }

  /** Where its upload goes: a new file of a folder or item, or a new version of a Girder file. */
  get target(): UploadTarget {
    return this.uploadTarget;
  }

  get size(): number {
    return this.length;
  }

  /** Changed since the last hand-off to the upload queue. */
  get dirty(): boolean {
    return this.changed;
  }

  get mtime(): number {
    return this.modified;
  }

  /** An mtime a program set (utimens) since the last write, kept in Girder metadata once uploaded. */
  get explicitMtime(): number | undefined {
    return this.programMtime;
  }

  get executable(): boolean {
    return this.exec;
  }

  /** A chmod (or a create's mode) made it executable or not, and Girder's item does not say so yet. */
  get modeChanged(): boolean {
    return this.exec !== this.storedExec;
  }

  /** Unlinked while open: nothing more is uploaded. */
  get unlinked(): boolean {
    return this.removed;
  }

  /** Why the newest upload failed, until one succeeds. */
  get lastError(): unknown {
    return this.uploadError;
  }

  /** Version of the remote file this copy started from (or last uploaded), to tell a change made elsewhere. */
  get remoteVersion(): string | undefined {
    return this.startVersion;
  }

  /** Why a write or truncate of the temp file failed (e.g. ENOSPC): its bytes are not what the program wrote, so they are never uploaded. */
  get failure(): unknown {
    return this.writeFailure;
  }

  /** Bytes copied in from Girder so far, when it was opened for writing without O_TRUNC (copyIn). */
  get filled(): number {
    return this.copiedIn;
  }

  get isNew(): boolean {
    return this.uploadTarget.kind !== 'file';
  }

  /**
   * Copy a remote file's bytes in, a bounded chunk at a time, when it is opened for writing
   * without O_TRUNC.
   */
  async copyIn(from: ReadSession, size: number): Promise<void> {
    const chunk = Buffer.allocUnsafe(Math.min(FILL_CHUNK, Math.max(size, 1)));
    for (let pos = 0; pos < size; ) {
      const n = await from.read(chunk, chunk.length, pos);
      if (n === 0) throw new FsError('EIO', `short read of ${this.where} at ${pos}`);
      await this.write(chunk, n, pos);
      pos += n;
      this.copiedIn = pos;
    }
  }

  /**
   * The copy of a remote file is ready: it shows the remote file's mtime, and is uploaded at its
   * close only when `changed` (emptied by an O_TRUNC open) or written to.
   */
  startedFrom(remote: { readonly mtime: number; readonly version: string; readonly executable: boolean }, changed: boolean): void {
    this.changed = changed;
    this.modified = remote.mtime;
    this.startVersion = remote.version;
    this.exec = remote.executable;
    this.storedExec = remote.executable;
  }

  /** Uploaded at its next close even if nothing is written (a new, empty file). */
  markDirty(): void {
    this.changed = true;
  }

  /** Girder already has exactly these bytes: nothing to upload. */
  markSameAsServer(): void {
    this.changed = false;
  }

  /** A program set its mtime (utimens). */
  setMtime(mtime: number): void {
    this.modified = mtime;
    this.programMtime = mtime;
  }

  /** A program made it executable or not (create's mode, chmod). */
  setExecutable(executable: boolean): void {
    this.exec = executable;
  }

  /** Girder's item now says whether it is executable. */
  modeStored(executable: boolean): void {
    this.storedExec = executable;
  }

  /** Girder has an upload of it: later uploads replace that file. */
  uploaded(file: FileDoc, version: string): void {
    this.uploadError = undefined;
    const target = this.uploadTarget;
    const fallback = target.kind === 'file' ? target.fallback : target;
    this.uploadTarget = { kind: 'file', fileId: file.id, remoteSha512: file.sha512, ...(fallback ? { fallback } : {}) };
    this.startVersion = version;
  }

  uploadFailed(err: unknown): void {
    this.uploadError = err;
  }

  /** Its path (and, for a file not on Girder yet, its target) changed: only OpenFiles calls this. */
  moveTo(path: string, target?: UploadTarget): void {
    this.where = path;
    if (target !== undefined) this.uploadTarget = target;
  }

  /** Unlinked while open: only OpenFiles calls this. */
  markUnlinked(): void {
    this.removed = true;
  }

  async read(into: Buffer, length: number, position: number): Promise<number> {
    if (position >= this.length) return 0;
    while (this.unsharing !== undefined) await this.unsharing;
    await this.writer.reached(this.lastWrite);
    const { bytesRead } = await this.fd.read(into, 0, Math.min(length, this.length - position), position);
    return bytesRead;
  }

  /**
   * Answered once the bytes are copied to the write thread, which writes them to the temp file: a
   * failure there is reported by a later write, and always by flush (close) and fsync.
   */
  async write(data: Buffer, length: number, position: number): Promise<number> {
    if (position + length > this.maxSize) throw new FsError('EFBIG', `write past ${this.maxSize}, the largest file the cache directory holds`);
    if (this.writeFailure !== undefined) throw toFsError(this.writeFailure);
    if (length <= 0) return 0;
    try {
      await this.unshare(this.length);
      if (data.length < length) throw abandoned(); // answered (EIO) while it waited: the kernel took its buffer back
      const hashed = this.hashing && position === this.hashedUpTo;
      if (hashed) this.hashedUpTo += length;
      else this.hashing = false;
      this.lastWrite = await this.writer.write(this.writeKey, this.fds(), position, data.subarray(0, length), hashed);
    } catch (err) {
      throw this.failed(err);
    }
    this.length = Math.max(this.length, position + length);
    this.touch();
    return length;
  }

  /** SHA-512 of the file once its writes are done, when they went front to back; throws the first write that failed. */
  async digest(): Promise<string | undefined> {
    return this.settled(this.hashing && this.hashedUpTo === this.length);
  }

  async truncate(size: number): Promise<void> {
    if (size > this.maxSize) throw new FsError('EFBIG', `size past ${this.maxSize}, the largest file the cache directory holds`);
    if (size > this.length) await this.checkRoom(size - this.length);
    try {
      await this.unshare(Math.min(size, this.length));
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
    if (size === 0) this.writeFailure = undefined; // nothing is left of what failed
    this.length = size;
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
    this.changed = false;
    return { path, sha512 };
  }

  /** Every queued write is in the temp file: the file's hash if asked for, or its first write error. */
  private async settled(wantDigest: boolean): Promise<string | undefined> {
    while (this.unsharing !== undefined) await this.unsharing;
    const { digest, error } = await this.writer.barrier(this.writeKey, wantDigest);
    if (error !== undefined) this.writeFailure ??= error;
    if (this.writeFailure !== undefined) throw toFsError(this.writeFailure);
    return digest;
  }

  /** Copy-on-write: move to a private copy of the first `keep` bytes before a change. */
  private async unshare(keep: number): Promise<void> {
    while (this.unsharing !== undefined) await this.unsharing;
    if (!this.shared) return;
    this.unsharing = (async () => {
      await this.writer.barrier(this.writeKey, false);
      const next = await newTempWith(this.dataDir, this.writer, this.fd, keep);
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

  /** Its state, for the log line of an operation given up on (OpenFiles adds who uses it). */
  describe(): Record<string, unknown> {
    return {
      size: this.length, dirty: this.changed,
      filled: this.copiedIn, unsharing: this.unsharing !== undefined, lastWrite: this.lastWrite, writeThread: this.writer.state(),
      ...(this.writeFailure === undefined ? {} : { failure: String(this.writeFailure) }),
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
      throw new FsError('ENOSPC', `growing ${this.where} by ${bytes} bytes needs more than the cache disk's free space`);
    }
  }

  private failed(err: unknown): FsError {
    this.writeFailure ??= err;
    return toFsError(err);
  }

  private touch(): void {
    this.changed = true;
    this.modified = Date.now();
    this.programMtime = undefined;
  }
}
