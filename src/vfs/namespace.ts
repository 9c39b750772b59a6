import { FsError } from '../errors.js';
import { kindOf } from '../girder/girder-error.js';
import { checkWritable, lookup, parentOf, type VfsContext } from './context.js';
import type { LocalFile } from './local-file.js';
import { checkStorableName, checkUtf8 } from './names.js';
import { dirKey, isDir, type DirNode, type FileNode, type FolderNode, type Node, type SymlinkNode } from './nodes.js';
import type { DataReader, Removals, UploadClaim, Uploads, UploadTarget } from './ports.js';
import { MAX_TARGET_BYTES, symlinkMeta } from './symlink-meta.js';
import { uploadedOrWaiting } from './upload-settled.js';

/**
 * libfuse's name for a file unlinked while open (fuse.c hidden_name: nodeid and a counter, 8 hex
 * digits each): it renames the file to it, and unlinks that name at the last close.
 */
const FUSE_HIDDEN = /^\.fuse_hidden[0-9a-f]{16}$/;

export function isFuseHidden(path: string): boolean {
  return FUSE_HIDDEN.test(path.slice(path.lastIndexOf('/') + 1));
}

/** mkdir, rmdir, symlink, unlink and rename, mapped to Girder folder, item and file calls. */
export class Namespace {
  /**
   * Files Girder no longer has that a process still holds open, by the hidden name libfuse gave
   * them: `stat` of the descriptor still answers until its last close. Never listed.
   */
  private readonly hidden = new Map<string, FileNode>();

  constructor(
    private readonly ctx: VfsContext,
    private readonly uploads: Uploads,
    private readonly removals: Removals,
    private readonly reader: Pick<DataReader, 'removed'>,
  ) {}

  /** The file unlinked while open that libfuse now calls `path`. */
  hiddenAt(path: string): FileNode | undefined {
    return this.hidden.get(path);
  }

  async mkdir(path: string): Promise<void> {
    const { dir, name } = await this.newEntry(path);
    const folder = await this.ctx.store.createFolder(dir.folder.id, name).catch(mapNameClash(path));
    this.ctx.tree.created(dir, name, { kind: 'folder', folder });
  }

  /** A symbolic link: an item holding its target in its metadata (symlink-meta.ts), one request. */
  async symlink(target: string, path: string): Promise<void> {
    checkUtf8(target, `the target of ${path}`);
    if (Buffer.byteLength(target) > MAX_TARGET_BYTES) throw new FsError('ENAMETOOLONG', `the target of ${path}`);
    const { dir, name } = await this.newEntry(path);
    const item = await this.ctx.store.createItem(dir.folder.id, name, symlinkMeta(target));
    if (item.name !== name) {
      // Girder has an item of the name that the cached listing does not show: it named this one `name (1)`.
      await this.ctx.store.deleteItem(item.id);
      this.ctx.tree.forgetDir(dir);
      throw new FsError('EEXIST', path);
    }
    this.ctx.tree.set(dir, name, { kind: 'symlink', item, target, access: dir.folder.accessLevel });
  }

  /** The folder and name of a new folder or link at `path`: writable, storable and free. */
  private async newEntry(path: string): Promise<{ dir: FolderNode; name: string }> {
    await this.removals.settled(path); // Girder still has an entry of the name until then
    const { dir, name } = await parentOf(this.ctx, path);
    checkWritable(this.ctx, dir, path);
    checkStorableName(name);
    if (dir.kind !== 'folder') throw new FsError('EPERM', `${path}: an item directory holds files only`);
    if ((await lookup(this.ctx, dir, name)) !== undefined || this.ctx.openFiles.has(path)) throw new FsError('EEXIST', path);
    return { dir, name };
  }

  async rmdir(path: string): Promise<void> {
    const { dir, name } = await parentOf(this.ctx, path);
    const node = await this.existing(dir, name, path);
    if (!isDir(node)) throw new FsError('ENOTDIR', path);
    checkWritable(this.ctx, dir, path);
    // A file unlinked while open stays under libfuse's hidden name until its last close, but is
    // no longer in the folder (it will not be uploaded): rmdir(2) of it succeeds on a local disk too.
    const held = this.ctx.openFiles.under(path).filter((local) => !local.unlinked);
    if ((await this.ctx.tree.list(node)).size > 0 || held.length > 0) throw new FsError('ENOTEMPTY', path);
    if (node.kind === 'folder') {
      // Empty by a listing fresh this moment: gone from the mount now, and Girder's recursive
      // DELETE follows in the background (journaled), taking the removals still queued under it:
      // `rm -r` and git gc's prune do not wait on one round trip per folder.
      await this.removals.enqueue({ path, kind: 'folder', id: node.folder.id, dirKey: dirKey(dir) });
      this.ctx.tree.removed(dir, name, node.folder.id);
      return;
    }
    // An item directory: removals still queued under it are done by its delete.
    const taken = await this.removals.takeUnder(path);
    try {
      await this.ctx.store.deleteItem(node.item.id);
    } catch (err) {
      for (const removal of taken) removal.restore();
      throw err;
    }
    for (const removal of taken) await removal.done();
    this.ctx.tree.set(dir, name, undefined);
  }

  async unlink(path: string): Promise<void> {
    if (isFuseHidden(path)) {
      this.unhide(path);
      return;
    }
    const { dir, name } = await parentOf(this.ctx, path);
    checkWritable(this.ctx, dir, path);
    const local = this.ctx.openFiles.get(path);
    if (local !== undefined) {
      await this.dropUploads(local);
      this.ctx.openFiles.unlink(local);
      if (local.target.kind !== 'file') return;
    }
    const node = await this.existing(dir, name, path).catch((err: unknown) => {
      if (local !== undefined && err instanceof FsError && err.errno === 'ENOENT') return undefined;
      throw err;
    });
    if (node === undefined) return;
    if (isDir(node)) throw new FsError('EISDIR', path);
    if (node.kind === 'file' && node.inItemDir) {
      await this.deleteFile(node);
      this.ctx.tree.set(dir, name, undefined);
      this.forgetParentOfItemDir(path); // the item may be a plain file now
      return;
    }
    // Gone from the mount now; Girder's DELETE follows in the background (journaled).
    await this.removals.enqueue({ path, kind: 'item', id: node.item.id, dirKey: dirKey(dir) });
    this.ctx.tree.removed(dir, name, node.item.id);
    if (node.kind === 'file') this.reader.removed(node.file.id);
  }

  async rename(from: string, to: string): Promise<void> {
    if (from === to) return;
    if (isFuseHidden(to)) {
      await this.hide(from, to);
      return;
    }
    if (to.startsWith(from + '/')) throw new FsError('EINVAL', `cannot move ${from} into itself`);
    await this.removals.settled(to); // Girder still has an entry of the name until then
    const src = await parentOf(this.ctx, from);
    const dst = await parentOf(this.ctx, to);
    checkWritable(this.ctx, src.dir, from);
    checkWritable(this.ctx, dst.dir, to);
    checkStorableName(dst.name);

    const local = this.ctx.openFiles.get(from);
    if (local !== undefined && local.isNew) {
      // Not on Girder yet: it is uploaded under the new name instead (a temp file renamed into
      // place costs one upload, not an upload, then a rename on the server).
      const uploading = this.ctx.openFiles.uploading(local);
      const claim = uploading ? this.uploads.claim(local.key) : undefined;
      if (!uploading || claim !== undefined) {
        try {
          await this.retargetNew(local, to, dst.dir, dst.name, claim);
        } finally {
          claim?.release();
        }
        return;
      }
    }
    if (local !== undefined) await this.settle(local, from);
    if (local !== undefined && local.isNew && !this.ctx.openFiles.uploading(local)) {
      await this.retargetNew(local, to, dst.dir, dst.name, undefined);
      return;
    }
    const node = await this.existing(src.dir, src.name, from);
    const target = this.ctx.openFiles.get(to) ?? (await lookup(this.ctx, dst.dir, dst.name));
    if (target !== undefined) await this.removeTarget(target, node, to, dst.dir, dst.name);

    const moved = await this.move(node, dst.dir, dst.name, to);
    this.ctx.tree.set(src.dir, src.name, undefined);
    this.ctx.tree.set(dst.dir, dst.name, moved);
    // Files being written under a moved directory keep writing to the same Girder ids.
    if (isDir(node)) this.ctx.openFiles.moveUnder(from, to);
    else if (local !== undefined && this.ctx.openFiles.get(from) === local) this.ctx.openFiles.move(local, to);
  }

  /**
   * An unlink while open, as libfuse does it (a rename to a hidden name): gone from Girder and from
   * listings at once, as an unlink is, while the descriptors go on (a local copy serves them; a
   * remote file serves what is cached) until the last close unlinks the hidden name.
   */
  private async hide(from: string, to: string): Promise<void> {
    const { dir, name } = await parentOf(this.ctx, from);
    checkWritable(this.ctx, dir, from);
    const local = this.ctx.openFiles.get(from);
    if (local !== undefined) {
      await this.dropUploads(local);
      this.ctx.openFiles.hide(local, to);
      if (local.target.kind !== 'file') return; // never uploaded: nothing on the server
    }
    const node = await lookup(this.ctx, dir, name);
    if (node === undefined) {
      if (local !== undefined) return;
      throw new FsError('ENOENT', from);
    }
    if (isDir(node)) throw new FsError('EISDIR', from);
    await this.deleteFile(node);
    this.ctx.tree.set(dir, name, undefined);
    if (node.kind !== 'file') return;
    if (node.inItemDir) this.forgetParentOfItemDir(from);
    if (local === undefined) this.hidden.set(to, node);
  }

  /** The last close of a file unlinked while open: forget it (Girder has nothing of it). */
  private unhide(path: string): void {
    this.hidden.delete(path);
    this.ctx.openFiles.forgetHidden(path);
  }

  /** A file written here and not yet uploaded: it will simply be uploaded under the new name. */
  private async retargetNew(local: LocalFile, to: string, dir: DirNode, name: string, claim: UploadClaim | undefined): Promise<void> {
    const target = this.ctx.openFiles.get(to) ?? (await lookup(this.ctx, dir, name));
    if (target !== undefined) await this.removeTarget(target, undefined, to, dir, name);
    const uploadTarget: UploadTarget = dir.kind === 'folder' ? { kind: 'folder', folderId: dir.folder.id, name } : { kind: 'item', itemId: dir.item.id, name };
    await claim?.retarget(to, uploadTarget, this.ctx.tree.nameFree(to));
    this.ctx.openFiles.move(local, to, uploadTarget);
  }

  /** rename over an existing entry replaces it, as POSIX says (an empty directory only). */
  private async removeTarget(target: Node | LocalFile, node: Node | undefined, to: string, dir: DirNode, name: string): Promise<void> {
    if (!('kind' in target)) {
      await this.dropUploads(target);
      this.ctx.openFiles.unlink(target);
      if (target.target.kind !== 'file') return;
      const remote = await lookup(this.ctx, dir, name);
      if (remote === undefined) return;
      target = remote;
    }
    const movingDir = node !== undefined && isDir(node);
    if (isDir(target) !== movingDir) throw new FsError(isDir(target) ? 'EISDIR' : 'ENOTDIR', to);
    if (isDir(target)) {
      if ((await this.ctx.tree.list(target)).size > 0) throw new FsError('ENOTEMPTY', to);
      if (target.kind === 'folder') await this.ctx.store.deleteFolder(target.folder.id);
      else await this.ctx.store.deleteItem(target.item.id);
    } else {
      await this.deleteFile(target);
    }
    this.ctx.tree.set(dir, name, undefined);
  }

  private async move(node: Node, dir: DirNode, name: string, to: string): Promise<Node> {
    const store = this.ctx.store;
    if (node.kind === 'folder') {
      if (dir.kind !== 'folder') throw new FsError('EPERM', `${to}: an item directory holds files only`);
      const parentId = dir.folder.id === node.folder.parentId ? undefined : dir.folder.id;
      const folder = await store
        .updateFolder(node.folder.id, { ...(name !== node.folder.name ? { name } : {}), ...(parentId ? { parentId } : {}) })
        .catch(mapNameClash(to));
      return { kind: 'folder', folder };
    }
    if (node.kind === 'itemdir' || node.kind === 'symlink') {
      if (dir.kind !== 'folder') throw new FsError('EPERM', `${to}: an item directory holds files only`);
      const item = await store.updateItem(node.item.id, { name, folderId: dir.folder.id });
      return { ...node, item, access: dir.folder.accessLevel };
    }
    return this.moveFile(node, dir, name);
  }

  /** A file is an item of its own (rename or move the item) or a file of an item directory. */
  private async moveFile(node: FileNode, dir: DirNode, name: string): Promise<Node> {
    const store = this.ctx.store;
    if (!node.inItemDir && dir.kind === 'folder') {
      const item = await store.updateItem(node.item.id, { name, folderId: dir.folder.id });
      const file = node.file.name === name ? node.file : await store.renameFile(node.file.id, name);
      return { ...node, item, file, access: dir.folder.accessLevel };
    }
    if (node.inItemDir && dir.kind === 'itemdir' && dir.item.id === node.item.id) {
      return { ...node, file: await store.renameFile(node.file.id, name) };
    }
    // Girder has no file move: copy the file (bytes shared on the server), then delete the old one.
    const item = dir.kind === 'itemdir' ? dir.item : await store.createItem(dir.folder.id, name);
    const copy = await store.copyFile(node.file.id, item.id);
    const file = copy.name === name ? copy : await store.renameFile(copy.id, name);
    await this.deleteFile(node);
    const access = dir.kind === 'folder' ? dir.folder.accessLevel : dir.access;
    return { kind: 'file', item, file, inItemDir: dir.kind === 'itemdir', access };
  }

  private async deleteFile(node: FileNode | SymlinkNode): Promise<void> {
    if (node.kind === 'symlink') {
      await this.ctx.store.deleteItem(node.item.id);
      return;
    }
    if (node.inItemDir) await this.ctx.store.deleteFile(node.file.id);
    else await this.ctx.store.deleteItem(node.item.id);
    this.reader.removed(node.file.id);
  }

  private async existing(dir: DirNode, name: string, path: string): Promise<Node> {
    const node = await lookup(this.ctx, dir, name);
    if (node === undefined) throw new FsError('ENOENT', path);
    return node;
  }

  /**
   * Wait until a file's pending uploads are done, so the server holds what is renamed. While one
   * waits (credentials refused, server away...) that may take hours: refuse at once instead.
   */
  private async settle(local: LocalFile, path: string): Promise<void> {
    const why = await uploadedOrWaiting(this.uploads, local.key, () => this.ctx.openFiles.uploadsSettled(local));
    if (why === undefined) return;
    this.ctx.logger.warn({ path, reason: why }, 'cannot rename a file whose upload waits; it can be renamed once Girder has it');
    throw new FsError('EIO', `${path}: its upload waits (${why})`);
  }

  /** The file is removed or replaced: drop its uploads not yet running, and let a running one end. */
  private async dropUploads(local: LocalFile): Promise<void> {
    await this.uploads.cancel(local.key);
    await this.ctx.openFiles.uploadsSettled(local);
  }

  /** Removing a file of an item can turn the item into a plain file: list its folder again. */
  private forgetParentOfItemDir(path: string): void {
    const itemDirPath = path.slice(0, path.lastIndexOf('/')) || '/';
    const folder = this.ctx.tree.resolveCached(itemDirPath.slice(0, itemDirPath.lastIndexOf('/')) || '/');
    if (folder !== undefined && isDir(folder)) this.ctx.tree.forgetDir(folder);
  }
}

/** Girder refuses a folder name already taken by a sibling (400 validation on `name`). */
function mapNameClash(path: string): (err: unknown) => never {
  return (err: unknown) => {
    if (kindOf(err) === 'conflict') throw new FsError('EEXIST', path, { cause: err });
    throw err;
  };
}


