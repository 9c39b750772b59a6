import type { FileDoc, FolderDoc, ItemDoc } from '../girder/types.js';
import { AccessLevel } from '../girder/types.js';
import { S_IFDIR, S_IFLNK, S_IFREG, type Attr } from './api.js';
import { executableOf } from './mode-meta.js';
import { mtimeOf } from './mtime-meta.js';
import { symlinkTargetOf } from './symlink-meta.js';

/** A Girder folder: a directory. */
export interface FolderNode {
  readonly kind: 'folder';
  readonly folder: FolderDoc;
}

/** An item that is not a single file of its own name: a directory of its files. */
export interface ItemDirNode {
  readonly kind: 'itemdir';
  readonly item: ItemDoc;
  /** The folder the item is in (whose access level applies to it). */
  readonly access: number;
}

/** A file: the one file of a same-named item (inItemDir false), or one file of an item directory. */
export interface FileNode {
  readonly kind: 'file';
  readonly item: ItemDoc;
  readonly file: FileDoc;
  readonly inItemDir: boolean;
  readonly access: number;
  /** The mtime a program here saw when it wrote these bytes (Tree keeps it for the upload's version), shown instead of Girder's. */
  readonly mtime?: number;
}

/** An item without files holding a link's target in its metadata (symlink-meta.ts). */
export interface SymlinkNode {
  readonly kind: 'symlink';
  readonly item: ItemDoc;
  readonly target: string;
  /** The folder the item is in (whose access level applies to it). */
  readonly access: number;
}

export type Node = FolderNode | ItemDirNode | FileNode | SymlinkNode;
export type DirNode = FolderNode | ItemDirNode;

export function isDir(node: Node): node is DirNode {
  return node.kind === 'folder' || node.kind === 'itemdir';
}

/** The key a directory's listing is cached under. */
export function dirKey(node: DirNode): string {
  return node.kind === 'folder' ? folderKey(node.folder.id) : itemDirKey(node.item.id);
}

export function folderKey(folderId: string): string {
  return `folder:${folderId}`;
}

export function itemDirKey(itemId: string): string {
  return `item:${itemId}`;
}

export function dirId(node: DirNode): string {
  return node.kind === 'folder' ? node.folder.id : node.item.id;
}

/**
 * DESIGN.md: an item holding exactly one file with the item's own name is a regular file. An item
 * with no file and a link's target in its metadata is a symbolic link.
 */
export function itemNode(item: ItemDoc, files: FileDoc[], access: number): FileNode | ItemDirNode | SymlinkNode {
  const target = files.length === 0 ? symlinkTargetOf(item) : undefined;
  if (target !== undefined) return { kind: 'symlink', item, target, access };
  const only = files.length === 1 ? files[0] : undefined;
  if (only !== undefined && only.name === item.name) {
    return { kind: 'file', item, file: only, inItemDir: false, access };
  }
  return { kind: 'itemdir', item, access };
}

export interface Owner {
  readonly uid: number;
  readonly gid: number;
  readonly readOnly: boolean;
  /** Permission bits to clear (like a umask), applied to every mode. */
  readonly umask: number;
}

function canWrite(owner: Owner, access: number): boolean {
  return !owner.readOnly && access >= AccessLevel.WRITE;
}

export function dirAttr(node: DirNode, owner: Owner): Attr {
  const doc = node.kind === 'folder' ? node.folder : node.item;
  const access = node.kind === 'folder' ? node.folder.accessLevel : node.access;
  const perm = (canWrite(owner, access) ? 0o755 : 0o555) & ~owner.umask;
  return {
    mode: S_IFDIR | perm,
    size: 4096,
    mtime: Math.max(doc.created, doc.updated),
    atime: Math.max(doc.created, doc.updated),
    ctime: doc.created,
    nlink: 2,
    uid: owner.uid,
    gid: owner.gid,
  };
}

/** A file's permission bits: 0644, 0444 where it cannot be written, plus 0111 when executable. */
export function filePerm(owner: Owner, writable: boolean, executable: boolean): number {
  return ((writable ? 0o644 : 0o444) | (executable ? 0o111 : 0)) & ~owner.umask;
}

export function fileAttr(node: FileNode, owner: Owner): Attr {
  const mtime = node.mtime ?? mtimeOf(node.item, node.file);
  return {
    mode: S_IFREG | filePerm(owner, canWrite(owner, node.access), !node.inItemDir && executableOf(node.item)),
    size: node.file.size,
    mtime,
    atime: mtime,
    ctime: node.file.created,
    nlink: 1,
    uid: owner.uid,
    gid: owner.gid,
  };
}

/** A link's mode is always 0777 (Linux ignores it); its size is its target's length. */
export function symlinkAttr(node: SymlinkNode, owner: Owner): Attr {
  return {
    mode: S_IFLNK | 0o777,
    size: Buffer.byteLength(node.target),
    mtime: node.item.created,
    atime: node.item.created,
    ctime: Math.max(node.item.created, node.item.updated),
    nlink: 1,
    uid: owner.uid,
    gid: owner.gid,
  };
}

export function nodeAttr(node: Node, owner: Owner): Attr {
  if (node.kind === 'file') return fileAttr(node, owner);
  if (node.kind === 'symlink') return symlinkAttr(node, owner);
  return dirAttr(node, owner);
}
