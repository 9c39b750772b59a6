import { unlink } from 'node:fs/promises';
import { errorMessage, toFsError } from '../errors.js';
import type { FileDoc, ItemDoc } from '../girder/types.js';
import { versionKeyOf } from './cache/version-key.js';
import type { VfsContext } from './context.js';
import type { LocalFile } from './local-file.js';
import { mtimeMeta } from './mtime-meta.js';
import { isDir, type DirNode, type FileNode } from './nodes.js';
import { parentAndName } from './names.js';
import type { DataReader, UploadResult, Uploads } from './ports.js';
import { UploadCancelledError } from './writeback/types.js';

/** How long a close waits to learn whether Girder already has the file's bytes. */
const SAME_CHECK_MS = 3000;

/**
 * Hands written files to the upload queue and, when Girder has them, puts the new file into the
 * tree, applies a program's mtime, and lets the local copy go.
 */
export class Sealer {
  /** Work that follows an upload (placing the file in the tree, a remote-change check), still running. */
  private readonly followUps = new Set<Promise<unknown>>();

  constructor(
    private readonly ctx: VfsContext,
    private readonly uploads: Uploads,
    private readonly reader: DataReader,
  ) {}

  /** Journal the file's current bytes for upload; resolves once the job is durable. */
  async seal(local: LocalFile): Promise<void> {
    if (await this.sameAsServer(local)) {
      local.markSameAsServer(); // rewritten with the bytes Girder has: nothing to sync, journal or send
      return;
    }
    const { path: tempPath, sha512 } = await local.snapshot().catch((err: unknown) => {
      throw toFsError(err);
    });
    const job = {
      path: local.path, key: local.key, target: local.target, tempPath, size: local.size,
      ...(sha512 !== undefined ? { sha512 } : {}),
      ...(local.isNew && this.ctx.tree.nameFree(local.path) ? { nameFree: true } : {}),
    };
    let done: Promise<UploadResult>;
    try {
      ({ done } = await this.uploads.submit(job));
    } catch (err) {
      // Not journaled (e.g. the cache disk is full): the bytes are still only here.
      local.markDirty();
      await unlink(tempPath).catch(() => undefined);
      throw toFsError(err);
    }
    this.warnIfChangedRemotely(local);
    this.track(local, done);
  }

  /**
   * Follow an upload of the local copy, which stays (and serves the path) until it settles. The
   * queue logs where the bytes are when it does not reach Girder: kept in lost+found, or still
   * journaled when the daemon stops (not a failure, and not logged per file).
   */
  track(local: LocalFile, done: Promise<UploadResult>): void {
    void this.followed(this.ctx.openFiles.trackUpload(local, done.then(
      (result) => this.finished(local, result),
      (err: unknown) => {
        if (!(err instanceof UploadCancelledError)) local.uploadFailed(err);
        return undefined;
      },
    )));
  }

  /** Resolves once the work that follows uploads is done (no request of it is left in flight). */
  async idle(): Promise<void> {
    while (this.followUps.size > 0) await Promise.allSettled([...this.followUps]);
  }

  private followed<T>(work: Promise<T>): Promise<T> {
    this.followUps.add(work);
    void work.finally(() => this.followUps.delete(work)).catch(() => undefined);
    return work;
  }

  /**
   * The file holds exactly the bytes of its Girder file, as it is now (an identical re-copy). Only
   * asked when the hash is at hand; any doubt (another upload of it in flight, an mtime to store,
   * the server not answering) says no, and the normal upload path decides.
   */
  private async sameAsServer(local: LocalFile): Promise<boolean> {
    const target = local.target;
    if (target.kind !== 'file' || target.remoteSha512 === undefined) return false;
    if (this.ctx.openFiles.uploading(local) || local.explicitMtime !== undefined) return false;
    const sha512 = await local.digest().catch((err: unknown) => {
      throw toFsError(err);
    });
    if (sha512 !== target.remoteSha512) return false;
    // A close must not wait on a slow server for a shortcut: no quick answer, no shortcut.
    const now = await this.ctx.store.getFile(target.fileId, { signal: AbortSignal.timeout(SAME_CHECK_MS) }).catch(() => undefined);
    return now?.sha512 === sha512 && now.size === local.size;
  }

  private async finished(local: LocalFile, result: UploadResult): Promise<UploadResult> {
    local.uploaded(result.file, versionKeyOf(result.file));
    this.reader.invalidate(result.file.id);
    if (local.unlinked) return result;
    if (!local.dirty) this.ctx.tree.rememberMtime(result.file, local.mtime);
    if (!local.dirty && local.size === result.file.size) {
      // Read back soon, often (git): from the cache, as the version Girder has now.
      await this.reader.seed({ id: result.file.id, size: result.file.size, versionKey: versionKeyOf(result.file) }, (into, length, position) => local.read(into, length, position));
    }
    try {
      await this.placeInTree(local, result.file, result.itemId, result.item);
    } catch (err) {
      this.ctx.logger.warn({ path: local.path, err: errorMessage(err) }, 'uploaded, but could not refresh the listing');
    }
    return result;
  }

  /**
   * Apply a program's mtime to the uploaded file, and record the file in its directory's cached
   * listing, if there is one (no listing is fetched for it).
   */
  private async placeInTree(local: LocalFile, file: FileDoc, itemId: string, knownItem: UploadResult['item']): Promise<void> {
    let item = local.explicitMtime !== undefined && !local.dirty
      ? await this.ctx.store.setItemMeta(itemId, mtimeMeta(local.explicitMtime, file))
      : undefined;
    const { parent, name } = parentAndName(local.path);
    const dir = this.ctx.tree.resolveCached(parent);
    if (dir === undefined || !isDir(dir)) {
      // Its directory's listing may still be cached while a parent's is not: drop it by id.
      this.ctx.tree.forgetById(local.target);
      return;
    }
    let exact = true;
    if (item === undefined) {
      const known = knownItem ?? this.itemFromListing(dir, name, itemId, file);
      item = known?.doc ?? (await this.ctx.store.getItem(itemId));
      exact = known?.exact ?? true;
    }
    const inItemDir = dir.kind === 'itemdir';
    const access = dir.kind === 'folder' ? dir.folder.accessLevel : dir.access;
    const node: FileNode = { kind: 'file', item, file, inItemDir, access };
    if (!inItemDir && item.name !== file.name) {
      this.ctx.tree.forgetDir(dir);
      return;
    }
    this.ctx.tree.set(dir, name, node, exact);
  }

  /**
   * The uploaded file's item as the cached listing has it, without asking: the item directory it is
   * in, or the item a replaced file already had (Girder moved only its size).
   */
  private itemFromListing(dir: DirNode, name: string, itemId: string, file: FileDoc): { doc: ItemDoc; exact: boolean } | undefined {
    if (dir.kind === 'itemdir') return dir.item.id === itemId ? { doc: dir.item, exact: false } : undefined;
    const node = this.ctx.tree.cached(dir)?.get(name);
    if (node?.kind !== 'file' || node.item.id !== itemId) return undefined;
    return { doc: { ...node.item, size: file.size }, exact: true };
  }

  /** DESIGN: the local close wins over a change made elsewhere meanwhile; say so in the log. */
  private warnIfChangedRemotely(local: LocalFile): void {
    const target = local.target;
    const opened = local.remoteVersion;
    // An earlier upload of this file still in flight changes the server's version itself.
    if (target.kind !== 'file' || opened === undefined || this.ctx.openFiles.uploading(local)) return;
    void this.followed(this.ctx.store.getFile(target.fileId).then(
      (now) => {
        if (versionKeyOf(now) !== opened) {
          this.ctx.logger.warn({ path: local.path }, 'file changed on the server while open here; the local version replaces it');
        }
      },
      () => undefined,
    ));
  }
}


