import { FsError } from '../errors.js';
import { toFsError } from './fs-error.js';
import type { Attr } from './api.js';
import { MAX_FILE_HANDLE, O_ACCMODE, O_RDONLY, O_TRUNC, S_IFREG } from './api.js';
import { versionKeyOf } from './cache/version-key.js';
import { checkWritable, parentOf, type VfsContext } from './context.js';
import { FilesAhead } from './files-ahead.js';
import { LocalFile } from './local-file.js';
import { executableOf, isExecutableMode } from './mode-meta.js';
import { checkStorableName } from './names.js';
import { fileAttr, filePerm, isDir, type FileNode, type Owner } from './nodes.js';
import type { DataReader, ReadSession, Removals, UploadTarget, Uploads } from './ports.js';
import type { UploadHandoff } from './upload-handoff.js';
import { uploadedOrWaiting } from './upload-settled.js';
import { growingLru } from './growing-lru.js';

type Handle =
  | { readonly kind: 'remote'; readonly path: string; readonly node: FileNode; readonly session: ReadSession }
  | { readonly kind: 'local'; readonly local: LocalFile; readonly writable: boolean };

export interface VfsOptions {
  /** Private directory for write buffers (0700). */
  readonly dataDir: string;
  /** `release` waits until Girder has the file. */
  readonly syncUploads: boolean;
}

/**
 * Open, read, write, truncate and close of files: the handles the kernel holds, each a read
 * session of a Girder file or a use of a local copy (open-files.ts), and when a close hands the
 * copy's bytes to the upload queue. Paths given are clean (context.ts cleanPath).
 */
export class FileHandles {
  private readonly handles = new Map<number, Handle>();
  /** Files opened for reading in this run (the kernel may keep their pages across opens: auto_cache). */
  private readonly readBefore = growingLru<string, true>(100_000);
  private nextHandle = 1;
  private readonly ahead: FilesAhead;

  constructor(
    private readonly ctx: VfsContext,
    private readonly reader: DataReader,
    private readonly uploads: Uploads,
    private readonly removals: Removals,
    private readonly handoff: UploadHandoff,
    private readonly opts: VfsOptions,
  ) {
    this.ahead = new FilesAhead(reader, ctx.tree.ttlMs, ctx.logger);
  }

  /** The attributes of an open handle (sizes of files being written), or undefined for an unknown one. */
  attrOf(fh: number): Attr | undefined {
    const handle = this.handles.get(fh);
    if (handle === undefined) return undefined;
    if (handle.kind === 'local') return localAttr(handle.local, this.ctx.owner);
    return fileAttr(handle.node, this.ctx.owner);
  }

  async open(path: string, flags: number): Promise<number> {
    const writable = (flags & O_ACCMODE) !== O_RDONLY;
    const truncate = (flags & O_TRUNC) !== 0;
    let local = this.ctx.openFiles.get(path);
    if (local === undefined) {
      const found = await this.ctx.tree.resolve(path);
      if (isDir(found)) throw new FsError('EISDIR', path);
      if (found.kind === 'symlink') throw new FsError('ELOOP', path); // the kernel follows links: only O_NOFOLLOW gets here
      const node = await this.current(path, found);
      if (!writable) {
        this.readBefore.set(node.file.id, true);
        const session = this.reader.open({ id: node.file.id, size: node.file.size, versionKey: versionKeyOf(node.file) });
        this.readingAlong(path);
        return this.addHandle({ kind: 'remote', path, node, session });
      }
      checkWritable(this.ctx, node, path);
      // A new copy is already empty when truncating: the truncate below then does nothing.
      local = this.ctx.openFiles.addUnlessTaken(await this.startWriting(path, node, truncate));
    }
    // Counted before any wait: an upload that finishes meanwhile must not dispose of the copy.
    this.ctx.openFiles.acquire(local);
    if (writable && truncate && local.size > 0) {
      try {
        await local.truncate(0);
      } catch (err) {
        this.ctx.openFiles.release(local);
        await this.ctx.openFiles.disposeIfIdle(local);
        throw err;
      }
    }
    return this.addHandle({ kind: 'local', local, writable });
  }

  async create(path: string, mode: number): Promise<number> {
    const { dir, name } = await parentOf(this.ctx, path);
    checkWritable(this.ctx, dir, path);
    checkStorableName(name);
    if (this.ctx.openFiles.has(path) || (await this.ctx.tree.list(dir)).has(name)) throw new FsError('EEXIST', path);
    const target: UploadTarget = dir.kind === 'folder' ? { kind: 'folder', folderId: dir.folder.id, name } : { kind: 'item', itemId: dir.item.id, name };
    // `rm f; echo x > f`: Girder may still have the old f; it goes first, or the new one would be
    // made beside it as `f (1)` (and sqlite's next journal found the old one: a hot journal).
    await this.removals.settled(path);
    const local = await LocalFile.create(this.opts.dataDir, path, target);
    local.markDirty();
    local.setExecutable(isExecutableMode(mode));
    this.ctx.openFiles.add(local);
    this.ctx.openFiles.acquire(local);
    return this.addHandle({ kind: 'local', local, writable: true });
  }

  async read(fh: number, into: Buffer, length: number, position: number): Promise<number> {
    const handle = this.handle(fh);
    if (handle.kind === 'local') return handle.local.read(into, length, position);
    try {
      return await handle.session.read(into, length, position);
    } catch (err) {
      const fsErr = toFsError(err);
      // The file was deleted or replaced on the server while open here.
      if (fsErr.errno === 'ENOENT') throw new FsError('ESTALE', handle.path, { cause: err });
      throw fsErr;
    }
  }

  readNow(fh: number, into: Buffer, length: number, position: number): number | undefined {
    const handle = this.handles.get(fh);
    return handle?.kind === 'remote' ? handle.session.readNow(into, length, position) : undefined;
  }

  async write(fh: number, data: Buffer, length: number, position: number): Promise<number> {
    return this.writableHandle(fh).local.write(data, length, position);
  }

  async flush(fh: number): Promise<void> {
    const handle = this.handles.get(fh);
    if (handle?.kind !== 'local' || !handle.writable) return;
    await this.handOffIfDirty(handle.local);
    if (this.opts.syncUploads) await this.waitUploaded(handle.local);
  }

  async fsync(fh: number): Promise<void> {
    const handle = this.handles.get(fh);
    if (handle?.kind !== 'local') return;
    await this.handOffIfDirty(handle.local);
    await this.waitUploaded(handle.local);
  }

  async release(fh: number): Promise<void> {
    const handle = this.handles.get(fh);
    if (handle === undefined) return;
    this.handles.delete(fh);
    if (handle.kind === 'remote') {
      handle.session.close();
      return;
    }
    const local = handle.local;
    this.ctx.openFiles.release(local);
    try {
      if (handle.writable) {
        await this.handOffIfDirty(local);
        if (this.opts.syncUploads) await this.waitUploaded(local);
      }
    } finally {
      await this.ctx.openFiles.disposeIfIdle(local);
    }
  }

  async truncate(path: string, size: number): Promise<void> {
    const openFiles = this.ctx.openFiles;
    let local = openFiles.get(path);
    if (local === undefined) {
      const found = await this.ctx.tree.resolve(path);
      if (isDir(found)) throw new FsError('EISDIR', path);
      if (found.kind === 'symlink') throw new FsError('ELOOP', path);
      const node = await this.current(path, found);
      if (node.file.size === size) return;
      checkWritable(this.ctx, node, path);
      local = openFiles.addUnlessTaken(await this.startWriting(path, node, size === 0));
    }
    // Held while truncating, as an open would: an upload that finishes meanwhile must not dispose of it.
    openFiles.acquire(local);
    try {
      await local.truncate(size);
    } finally {
      openFiles.release(local);
    }
    try {
      if (!openFiles.inUse(local)) await this.handOffIfDirty(local);
    } finally {
      if (!openFiles.inUse(local)) await openFiles.disposeIfIdle(local);
    }
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    await this.writableHandle(fh).local.truncate(size);
  }

  /**
   * The file as Girder has it now, when its document is older than the TTL (Tree.current). Only
   * asked for a file read before through this mount: the kernel's page cache or the block cache may
   * hold its bytes, which a same-size replacement would leave looking current. A file never read
   * here is read fresh anyway (the download serves what Girder has), and so is one fetched ahead of
   * this open less than a TTL ago.
   */
  private async current(path: string, node: FileNode): Promise<FileNode> {
    const fetchedAhead = this.ahead.takeFetchedAt(node.file.id);
    if (!this.readBefore.has(node.file.id)) {
      if (!this.reader.holds(node.file.id)) return node;
      // Fetched ahead of this open, within the TTL: as fresh as a download now would have been then.
      if (fetchedAhead !== undefined && Date.now() - fetchedAhead < this.ctx.tree.ttlMs) return node;
    }
    const { dir, name } = await parentOf(this.ctx, path);
    return this.ctx.tree.current(dir, name, node);
  }

  /** A file opened for reading: when a program reads its directory's files one after the other, the next ones are fetched ahead. */
  private readingAlong(path: string): void {
    const at = this.ctx.tree.siblingsOf(path);
    if (at !== undefined) this.ahead.opened(at.dir, at.entries, at.name);
  }

  /** Stop fetching ahead: what waits is dropped; resolves once nothing is in flight. */
  stopAhead(): Promise<void> {
    return this.ahead.stop();
  }

  private async startWriting(path: string, node: FileNode, empty: boolean): Promise<LocalFile> {
    const { dir, name } = await parentOf(this.ctx, path);
    const fallback = dir.kind === 'folder' ? { folderId: dir.folder.id, name } : { itemId: dir.item.id, name };
    const target: UploadTarget = { kind: 'file', fileId: node.file.id, fallback, ...(node.file.sha512 ? { remoteSha512: node.file.sha512 } : {}) };
    const local = await LocalFile.create(this.opts.dataDir, path, target);
    try {
      if (!empty) {
        const session = this.reader.open({ id: node.file.id, size: node.file.size, versionKey: versionKeyOf(node.file) });
        try {
          await local.copyIn(session, node.file.size);
        } finally {
          session.close();
        }
      }
    } catch (err) {
      await local.dispose();
      throw err;
    }
    const executable = !node.inItemDir && executableOf(node.item);
    local.startedFrom({ mtime: fileAttr(node, this.ctx.owner).mtime, version: versionKeyOf(node.file), executable }, empty && node.file.size > 0);
    return local;
  }

  private async handOffIfDirty(local: LocalFile): Promise<void> {
    if (local.failure !== undefined && !local.unlinked) throw toFsError(local.failure);
    if (local.dirty && !local.unlinked) await this.handoff.handOff(local);
  }

  /**
   * Until Girder has the file (fsync, --sync-uploads). An upload that waits (credentials refused,
   * server away...) may wait for hours: fail at once then; it stays queued and journaled.
   */
  private async waitUploaded(local: LocalFile): Promise<void> {
    this.uploads.hurry(local.key);
    const why = await uploadedOrWaiting(this.uploads, local.key, () => this.ctx.openFiles.uploadsSettled(local));
    if (why !== undefined) {
      this.ctx.logger.warn({ path: local.path, reason: why }, 'fsync: not on the server yet (EIO); the upload stays queued and journaled');
      throw new FsError('EIO', `${local.path} is not on the server yet: its upload waits (${why})`);
    }
    if (local.lastError !== undefined) throw toFsError(local.lastError);
  }

  private addHandle(handle: Handle): number {
    // Numbers come round again after MAX_FILE_HANDLE opens (a day of 10,000 a second), skipping open ones.
    const after = (n: number): number => (n >= MAX_FILE_HANDLE ? 1 : n + 1);
    let fh = this.nextHandle;
    while (this.handles.has(fh)) fh = after(fh);
    this.nextHandle = after(fh);
    this.handles.set(fh, handle);
    return fh;
  }

  private handle(fh: number): Handle {
    const handle = this.handles.get(fh);
    if (handle === undefined) throw new FsError('EBADF', `no handle ${fh}`);
    return handle;
  }

  private writableHandle(fh: number): Handle & { kind: 'local' } {
    const handle = this.handle(fh);
    if (handle.kind !== 'local' || !handle.writable) throw new FsError('EBADF', `handle ${fh} is not open for writing`);
    return handle;
  }
}

/** A local copy's attributes: a regular file of the mount's owner. */
export function localAttr(local: LocalFile, owner: Owner): Attr {
  return {
    mode: S_IFREG | filePerm(owner, true, local.executable),
    size: local.size,
    mtime: local.mtime,
    atime: local.mtime,
    ctime: local.mtime,
    nlink: 1,
    uid: owner.uid,
    gid: owner.gid,
  };
}
