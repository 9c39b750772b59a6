import { FsError } from '../errors.js';
import type { Attr, FileSystem, FsStats } from './api.js';
import { checkWritable, cleanPath, parentOf, type VfsContext } from './context.js';
import { FileHandles, localAttr, type VfsOptions } from './file-handles.js';
import { Namespace } from './namespace.js';
import type { Meta } from '../girder/types.js';
import { executableOf, isExecutableMode, modeMeta } from './mode-meta.js';
import { fileAttr, nodeAttr, type FileNode } from './nodes.js';
import { mtimeMeta } from './mtime-meta.js';
import type { DataReader, Removals, Uploads } from './ports.js';
import type { UploadHandoff } from './upload-handoff.js';
import { Xattrs } from './xattrs.js';

/**
 * The filesystem model: the FileSystem the fuse layer calls. Calls on open files go to
 * FileHandles, on names to Namespace, on metadata to Xattrs.
 */
export class Vfs implements FileSystem {
  private readonly files: FileHandles;
  private readonly namespace: Namespace;
  private readonly xattrs: Xattrs;

  constructor(
    private readonly ctx: VfsContext,
    reader: DataReader,
    private readonly uploads: Uploads,
    removals: Removals,
    private readonly handoff: UploadHandoff,
    opts: VfsOptions,
  ) {
    this.files = new FileHandles(ctx, reader, uploads, removals, handoff, opts);
    this.namespace = new Namespace(ctx, uploads, removals, reader);
    this.xattrs = new Xattrs(ctx);
  }

  async getattr(path: string): Promise<Attr> {
    path = cleanPath(path);
    const local = this.ctx.openFiles.get(path);
    if (local !== undefined) return localAttr(local, this.ctx.owner);
    const hidden = this.namespace.hiddenAt(path);
    if (hidden !== undefined) return fileAttr(hidden, this.ctx.owner);
    return nodeAttr(await this.ctx.tree.resolve(path), this.ctx.owner);
  }

  async fgetattr(path: string, fh: number): Promise<Attr> {
    return this.files.attrOf(fh) ?? this.getattr(path);
  }

  async readdir(path: string): Promise<string[]> {
    path = cleanPath(path);
    const dir = await this.ctx.tree.resolveDir(path);
    const listing = this.ctx.tree.list(dir);
    this.ctx.tree.walking(path); // after this listing is asked for: it goes first
    const names = new Set((await listing).keys());
    for (const name of this.ctx.openFiles.namesIn(path)) names.add(name);
    return [...names];
  }

  async statfs(): Promise<FsStats> {
    const blocks = 2 ** 40 / 4096;
    return { bsize: 4096, blocks, bfree: blocks, bavail: blocks, files: 1e9, ffree: 1e9, namemax: 255 };
  }

  open(path: string, flags: number): Promise<number> {
    return this.files.open(cleanPath(path), flags);
  }

  create(path: string, mode: number, _flags: number): Promise<number> {
    return this.files.create(cleanPath(path), mode);
  }

  read(fh: number, into: Buffer, length: number, position: number): Promise<number> {
    return this.files.read(fh, into, length, position);
  }

  readNow(fh: number, into: Buffer, length: number, position: number): number | undefined {
    return this.files.readNow(fh, into, length, position);
  }

  write(fh: number, data: Buffer, length: number, position: number): Promise<number> {
    return this.files.write(fh, data, length, position);
  }

  flush(fh: number): Promise<void> {
    return this.files.flush(fh);
  }

  fsync(fh: number): Promise<void> {
    return this.files.fsync(fh);
  }

  release(fh: number): Promise<void> {
    return this.files.release(fh);
  }

  truncate(path: string, size: number): Promise<void> {
    return this.files.truncate(cleanPath(path), size);
  }

  ftruncate(fh: number, size: number): Promise<void> {
    return this.files.ftruncate(fh, size);
  }

  async utimens(path: string, _atime: number, mtime: number): Promise<void> {
    path = cleanPath(path);
    const local = this.ctx.openFiles.get(path);
    if (local !== undefined) {
      local.setMtime(mtime);
      return;
    }
    const node = await this.ctx.tree.resolve(path);
    if (node.kind !== 'file' || node.inItemDir || this.ctx.owner.readOnly) return;
    if (fileAttr(node, this.ctx.owner).mtime === mtime) return;
    await this.storeItemMeta(path, node, mtimeMeta(mtime, node.file));
    this.ctx.tree.rememberMtime(node.file, mtime);
  }

  /**
   * Girder has no modes or owners. A file's execute bit is kept in its item's metadata
   * (mode-meta.ts); the other bits, and any mode of a directory, are accepted (so cp -p and
   * rsync -a work) and not stored.
   */
  async chmod(path: string, mode: number): Promise<void> {
    path = cleanPath(path);
    const executable = isExecutableMode(mode);
    const local = this.ctx.openFiles.get(path);
    if (local !== undefined) {
      local.setExecutable(executable);
      // The upload to come, or the one in flight, stores it (after-upload.ts).
      if (local.dirty || local.isNew || this.ctx.openFiles.uploading(local) || !local.modeChanged) return;
    }
    const node = await this.ctx.tree.resolve(path);
    if (node.kind !== 'file' || node.inItemDir || this.ctx.owner.readOnly) return;
    if (local === undefined && executableOf(node.item) === executable) return;
    if (local !== undefined && (local.target.kind !== 'file' || local.target.fileId !== node.file.id)) return;
    await this.storeItemMeta(path, node, modeMeta(executable));
    local?.modeStored(executable);
  }

  /** Metadata of a file Girder has (no upload of it pending), and the file's cached listing entry with it. */
  private async storeItemMeta(path: string, node: FileNode, meta: Meta): Promise<void> {
    checkWritable(this.ctx, node, path);
    const item = await this.ctx.store.setItemMeta(node.item.id, meta);
    const { dir, name } = await parentOf(this.ctx, path);
    this.ctx.tree.set(dir, name, { ...node, item });
  }

  async chown(path: string, _uid: number, _gid: number): Promise<void> {
    await this.getattr(path);
  }

  unlink(path: string): Promise<void> {
    return this.namespace.unlink(cleanPath(path));
  }

  mkdir(path: string, _mode: number): Promise<void> {
    return this.namespace.mkdir(cleanPath(path));
  }

  rmdir(path: string): Promise<void> {
    return this.namespace.rmdir(cleanPath(path));
  }

  rename(from: string, to: string): Promise<void> {
    return this.namespace.rename(cleanPath(from), cleanPath(to));
  }

  symlink(target: string, path: string): Promise<void> {
    return this.namespace.symlink(target, cleanPath(path));
  }

  async readlink(path: string): Promise<string> {
    path = cleanPath(path);
    const node = await this.ctx.tree.resolve(path);
    if (node.kind !== 'symlink') throw new FsError('EINVAL', `${path} is not a symbolic link`);
    return node.target;
  }

  getxattr(path: string, name: string): Promise<Buffer> {
    return this.xattrs.get(cleanPath(path), name);
  }

  setxattr(path: string, name: string, value: Buffer): Promise<void> {
    return this.xattrs.set(cleanPath(path), name, value);
  }

  listxattr(path: string): Promise<string[]> {
    return this.xattrs.list(cleanPath(path));
  }

  removexattr(path: string, name: string): Promise<void> {
    return this.xattrs.remove(cleanPath(path), name);
  }

  /**
   * Resolves once no work of the model is left talking to Girder (listings being fetched, files
   * fetched ahead, the follow-ups of finished uploads), or after `timeoutMs`: call it once the kernel let go of the
   * mount and the upload queue is closed, before the HTTP client closes.
   */
  async quiesce(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    try {
      return await Promise.race([Promise.all([this.handoff.idle(), this.ctx.tree.idle(), this.files.stopAhead()]).then(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  progressOf(path: string): number {
    path = cleanPath(path);
    const local = this.ctx.openFiles.get(path);
    const uploads = this.uploads.status().filter((u) => u.path === path);
    if (local === undefined && uploads.length === 0) return -1;
    return (local?.filled ?? 0) + uploads.reduce((sum, u) => sum + u.sent, 0);
  }

  waitsOf(path: string): Record<string, unknown> {
    path = cleanPath(path);
    const local = this.ctx.openFiles.get(path);
    const uploads = this.uploads.status().filter((u) => u.path === path);
    return {
      ...(local === undefined ? {} : { localCopy: this.ctx.openFiles.describe(local) }),
      ...(uploads.length === 0 ? {} : { uploads }),
    };
  }

  /** Files with uploads not yet finished or still open for writing. */
  get openOrPending(): number {
    return this.ctx.openFiles.count;
  }

}


