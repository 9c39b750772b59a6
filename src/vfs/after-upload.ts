import { errorMessage } from '../errors.js';
import type { FileDoc, ItemDoc } from '../girder/types.js';
import { versionKeyOf } from './cache/version-key.js';
import type { VfsContext } from './context.js';
import type { LocalFile } from './local-file.js';
import { modeMeta } from './mode-meta.js';
import { mtimeMeta } from './mtime-meta.js';
import { parentAndName } from './names.js';
import { isDir, type DirNode, type FileNode } from './nodes.js';
import type { DataReader, UploadResult } from './ports.js';

/**
 * What follows an upload that reached Girder: the local copy learns the new file (its next upload
 * replaces it), the block cache drops the old version and, for a copy still showing these bytes,
 * is seeded with them, and the file shows in its directory's cached listing with a program's mtime.
 */
export async function afterUpload(ctx: VfsContext, reader: DataReader, local: LocalFile, result: UploadResult): Promise<void> {
  local.uploaded(result.file, versionKeyOf(result.file));
  reader.invalidate(result.file.id);
  if (local.unlinked) return;
  if (!local.dirty) ctx.tree.rememberMtime(result.file, local.mtime);
  if (!local.dirty && local.size === result.file.size) {
    // Read back soon, often (git): from the cache, as the version Girder has now.
    await reader.seed({ id: result.file.id, size: result.file.size, versionKey: versionKeyOf(result.file) }, (into, length, position) => local.read(into, length, position));
  }
  try {
    await placeInTree(ctx, local, result.file, result.itemId, result.item);
  } catch (err) {
    ctx.logger.warn({ path: local.path, err: errorMessage(err) }, 'uploaded, but could not refresh the listing');
  }
}

/**
 * Apply a program's mtime to the uploaded file, and record the file in its directory's cached
 * listing, if there is one (no listing is fetched for it).
 */
async function placeInTree(ctx: VfsContext, local: LocalFile, file: FileDoc, itemId: string, knownItem: UploadResult['item']): Promise<void> {
  let item = await storeProgramMeta(ctx, local, file, itemId);
  const { parent, name } = parentAndName(local.path);
  const dir = ctx.tree.resolveCached(parent);
  if (dir === undefined || !isDir(dir)) {
    // Its directory's listing may still be cached while a parent's is not: drop it by id.
    ctx.tree.forgetById(local.target);
    return;
  }
  let exact = true;
  if (item === undefined) {
    const known = knownItem ?? itemFromListing(ctx, dir, name, itemId, file);
    item = known?.doc ?? (await ctx.store.getItem(itemId));
    exact = known?.exact ?? true;
  }
  const inItemDir = dir.kind === 'itemdir';
  const access = dir.kind === 'folder' ? dir.folder.accessLevel : dir.access;
  const node: FileNode = { kind: 'file', item, file, inItemDir, access };
  if (!inItemDir && item.name !== file.name) {
    ctx.tree.forgetDir(dir);
    return;
  }
  ctx.tree.set(dir, name, node, exact);
}

/**
 * The mtime and execute bit a program set, in one metadata request; none when neither was set or
 * the copy changed again (its next upload stores them).
 */
async function storeProgramMeta(ctx: VfsContext, local: LocalFile, file: FileDoc, itemId: string): Promise<ItemDoc | undefined> {
  let meta = local.explicitMtime !== undefined ? mtimeMeta(local.explicitMtime, file) : {};
  let item: ItemDoc | undefined;
  // Again while a chmod came during the request (Vfs.chmod leaves a file being uploaded to this).
  while (!local.dirty && (local.modeChanged || Object.keys(meta).length > 0)) {
    const executable = local.executable;
    item = await ctx.store.setItemMeta(itemId, { ...meta, ...(local.modeChanged ? modeMeta(executable) : {}) });
    local.modeStored(executable);
    meta = {};
  }
  return item;
}

/**
 * The uploaded file's item as the cached listing has it, without asking: the item directory it is
 * in, or the item a replaced file already had (Girder moved only its size).
 */
function itemFromListing(ctx: VfsContext, dir: DirNode, name: string, itemId: string, file: FileDoc): { doc: ItemDoc; exact: boolean } | undefined {
  if (dir.kind === 'itemdir') return dir.item.id === itemId ? { doc: dir.item, exact: false } : undefined;
  const node = ctx.tree.cached(dir)?.get(name);
  if (node?.kind !== 'file' || node.item.id !== itemId) return undefined;
  return { doc: { ...node.item, size: file.size }, exact: true };
}
