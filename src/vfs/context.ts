import { FsError } from '../errors.js';
import type { GirderStore } from '../girder/store.js';
import { AccessLevel } from '../girder/types.js';
import type { Logger } from '../log.js';
import { parentAndName } from './names.js';
import type { DirNode, Node, Owner } from './nodes.js';
import type { OpenFiles } from './open-files.js';
import type { Tree } from './tree.js';

/** What the parts of the filesystem model share. */
export interface VfsContext {
  readonly store: GirderStore;
  readonly tree: Tree;
  readonly owner: Owner;
  readonly logger: Logger;
  /** Files being written or uploaded, by mount path. */
  readonly openFiles: OpenFiles;
}

/** Mount paths from FUSE are absolute and clean; normalise the root only. */
export function cleanPath(path: string): string {
  return path === '' ? '/' : path;
}

export function accessOf(node: Node): number {
  return node.kind === 'folder' ? node.folder.accessLevel : node.access;
}

/** Refuse a change the mount or the caller's Girder access does not allow. */
export function checkWritable(ctx: VfsContext, node: Node, path: string): void {
  if (ctx.owner.readOnly) throw new FsError('EROFS', path);
  if (accessOf(node) < AccessLevel.WRITE) throw new FsError('EACCES', `no write access to ${path}`);
}

/** The directory holding `path` and the entry's name in it. */
export async function parentOf(ctx: VfsContext, path: string): Promise<{ dir: DirNode; name: string; parentPath: string }> {
  const { parent, name } = parentAndName(path);
  return { dir: await ctx.tree.resolveDir(parent), name, parentPath: parent };
}

/** The entry `name` of `dir`, or undefined (from the listing, fetched if stale). */
export async function lookup(ctx: VfsContext, dir: DirNode, name: string): Promise<Node | undefined> {
  return (await ctx.tree.list(dir)).get(name);
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}
