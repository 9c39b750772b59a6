import { createHash, randomUUID, type Hash } from 'node:crypto';
import { open, link, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FsError, toFsError } from '../errors.js';
import type { UploadResult, UploadTarget } from './ports.js';

/** Positions past this lose precision in a JS number: refuse them rather than corrupt data. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

/**
 * The local copy of a file being written: a private temp file (0600, in the cache directory) that
 * every handle of the path shares, as they would share an inode. It lives while a handle has it
 * open or an upload of it is pending, and serves reads of the path meanwhile.
 */
export class LocalFile {
  /** Names this file's uploads across renames (see UploadJob.key). */
  readonly key = randomUUID();
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

  /**
   * SHA-512 of bytes [0, hashedUpTo), kept while the file is written front to back (cp, rsync,
   * editors), so a close needs no second pass over the file to hash it. Gone after any other write.
   */
  private hasher: Hash | undefined = createHash('sha512');
  private hashedUpTo = 0;

  /** The temp file is also the snapshot an upload reads: copy it before changing it. */
  private shared = false;
  private unsharing: Promise<void> | undefined;

  private constructor(
    private readonly dataDir: string,
    public path: string,
    public target: UploadTarget,
    private tempPath: string,
    private fd: FileHandle,
    public size: number,
  ) {}

  static async create(dataDir: string, path: string, target: UploadTarget): Promise<LocalFile> {
    const { tempPath, fd } = await newTemp(dataDir);
    return new LocalFile(dataDir, path, target, tempPath, fd, 0);
  }

  get isNew(): boolean {
    return this.target.kind !== 'file';
  }

  async read(into: Buffer, length: number, position: number): Promise<number> {
    if (position >= this.size) return 0;
    while (this.unsharing !== undefined) await this.unsharing;
    const { bytesRead } = await this.fd.read(into, 0, Math.min(length, this.size - position), position);
    return bytesRead;
  }

  async write(data: Buffer, length: number, position: number): Promise<number> {
    if (position + length > MAX_OFFSET) throw new FsError('EFBIG', `write past ${MAX_OFFSET}`);
    try {
      await this.unshare(this.size);
      let done = 0;
      while (done < length) {
        const { bytesWritten } = await this.fd.write(data, done, length - done, position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw this.failed(err);
    }
    this.hashWrite(data, length, position);
    this.size = Math.max(this.size, position + length);
    this.touch();
    return length;
  }

  async truncate(size: number): Promise<void> {
    if (size > MAX_OFFSET) throw new FsError('EFBIG', `size past ${MAX_OFFSET}`);
    if (size > this.size) await this.checkRoom(size - this.size);
    try {
      await this.unshare(Math.min(size, this.size));
      await this.fd.truncate(size);
    } catch (err) {
      throw this.failed(err);
    }
    if (size === 0) this.failure = undefined; // nothing is left of what failed
    if (size === 0) {
      this.hasher = createHash('sha512');
      this.hashedUpTo = 0;
    } else if (size !== this.hashedUpTo) {
      this.hasher = undefined;
    }
    this.size = size;
    this.touch();
  }

  /**
   * A second name for the current bytes, which the upload queue takes over (and removes when
   * done). Later changes copy the bytes first, so the upload never sees them change under it.
   */
  async snapshot(): Promise<{ path: string; sha512: string | undefined }> {
    await this.fd.sync();
    const path = join(this.dataDir, `${randomUUID()}.upload`);
    await link(this.tempPath, path);
    this.shared = true;
    this.dirty = false;
    const sha512 = this.hasher !== undefined && this.hashedUpTo === this.size ? this.hasher.copy().digest('hex') : undefined;
    return { path, sha512 };
  }

  /** Copy-on-write: move to a private copy of the first `keep` bytes before a change. */
  private async unshare(keep: number): Promise<void> {
    while (this.unsharing !== undefined) await this.unsharing;
    if (!this.shared) return;
    this.unsharing = (async () => {
      const next = await newTemp(this.dataDir);
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (let pos = 0; pos < keep; ) {
        const { bytesRead } = await this.fd.read(chunk, 0, Math.min(chunk.length, keep - pos), pos);
        if (bytesRead === 0) break;
        await next.fd.write(chunk, 0, bytesRead, pos);
        pos += bytesRead;
      }
      await this.fd.close();
      await unlink(this.tempPath).catch(() => undefined);
      this.fd = next.fd;
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
    await this.fd.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
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

  private hashWrite(data: Buffer, length: number, position: number): void {
    if (this.hasher === undefined) return;
    if (position === this.hashedUpTo) {
      this.hasher.update(data.subarray(0, length));
      this.hashedUpTo += length;
    } else if (length > 0) {
      this.hasher = undefined;
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

async function newTemp(dataDir: string): Promise<{ tempPath: string; fd: FileHandle }> {
  const tempPath = join(dataDir, `${randomUUID()}.data`);
  return { tempPath, fd: await open(tempPath, 'w+', 0o600) };
}
