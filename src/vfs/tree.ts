import type { LRUCache } from 'lru-cache';
import { FsError } from '../errors.js';
import { isMissing, isTransient } from '../girder/girder-error.js';
import type { GirderStore } from '../girder/store.js';
import type { FileDoc, FolderDoc } from '../girder/types.js';
import type { Logger } from '../log.js';
import { versionKeyOf } from './cache/version-key.js';
import { DirectoryFetch } from './directory-fetch.js';
import { ItemFiles } from './item-files.js';
import { SiblingsAhead } from './siblings-ahead.js';
import type { UploadTarget } from './ports.js';
import { parentAndName, splitPath } from './names.js';
import { dirKey, folderKey, isDir, itemDirKey, type DirNode, type FileNode, type FolderNode, type Node } from './nodes.js';
import { growingLru } from './growing-lru.js';

/**
 * A walk's next sibling folders listed ahead of it: at most 8 ahead, 4 at a time beside the
 * listings programs wait for (siblings-ahead.ts).
 */
export const LISTINGS_AHEAD = { maxAhead: 8, inFlight: 4 } as const;

/** A listing dropped (forgetDir) while it was being fetched is fetched again this often before it is kept. */
const REFETCHES = 3;

interface Listing {
  readonly entries: Map<string, Node>;
  /** When it arrived: it answers for one TTL from then, however long it took to fetch. */
  fetchedAt: number;
}

/** Local changes made while a listing is fetched, replayed onto it when it arrives. */
interface Fetching {
  readonly edits: Array<{ readonly name: string; readonly node: Node | undefined }>;
  dropped: boolean;
}

export interface TreeOptions {
  /** How long a listing answers lookups before it is fetched again (0 = always). */
  readonly ttlMs: number;
  readonly maxDirs?: number;
  readonly logger: Logger;
}

/**
 * The Girder-to-file mapping with listings cached for the TTL: one listing answers lookups and
 * attributes of all its children, so `ls -l`, `find` and `du` cost one listing per directory. A
 * listing fetched again costs its folder and item pages only: the files of items that did not
 * change are kept (item-files.ts). Local mutations edit cached listings in place.
 */
export class Tree {
  private readonly listings: LRUCache<string, Listing>;
  private readonly inFlight = new Map<string, Promise<Listing>>();
  private readonly fetching = new Map<string, Fetching>();
  private readonly itemFiles = new ItemFiles();
  private readonly fetchDir: DirectoryFetch;
  private readonly ahead: SiblingsAhead<DirNode>;
  /**
   * The mtimes of files uploaded from here, by file id, for the version uploaded: a program that
   * wrote a file at 12:00:00 and finds 12:00:01 (Girder's time for the new content) later thinks
   * someone else changed it (vim asks before it overwrites). Kept for this run; another version
   * (Girder renews `created`) shows Girder's time again.
   */
  private readonly writtenMtimes = growingLru<string, { readonly created: number; readonly mtime: number }>(100_000);
  /**
   * Entries removed here whose removal on Girder is still queued, by listing key: kept out of
   * listings fetched meanwhile (the server still has them).
   */
  private readonly removing = new Map<string, Set<string>>();
  private rootNode: FolderNode;

  constructor(private readonly store: GirderStore, root: FolderDoc, private readonly opts: TreeOptions) {
    this.rootNode = { kind: 'folder', folder: root };
    this.listings = growingLru(opts.maxDirs ?? 20_000);
    this.fetchDir = new DirectoryFetch(store, this.itemFiles, (node) => this.withMtime(node));
    this.ahead = new SiblingsAhead<DirNode>({
      what: 'listing',
      ttlMs: opts.ttlMs,
      ...LISTINGS_AHEAD,
      walks: isDir,
      keyOf: dirKey,
      done: (dir) => this.freshOrFetching(dir),
      act: (dir) => this.list(dir),
      logger: opts.logger,
    });
  }

  /** How long a listing is served without asking again (--attr-ttl). */
  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  get root(): FolderNode {
    return this.rootNode;
  }

  /** The mounted folder's document changed (its metadata). */
  setRoot(folder: FolderDoc): void {
    this.rootNode = { kind: 'folder', folder };
  }

  async resolve(path: string): Promise<Node> {
    let node: Node = this.rootNode;
    for (const part of splitPath(path)) {
      if (!isDir(node)) throw new FsError('ENOTDIR', path);
      const entries = await this.list(node);
      const child = entries.get(part);
      if (child === undefined) throw new FsError('ENOENT', path);
      node = child;
    }
    return node;
  }

  async resolveDir(path: string): Promise<DirNode> {
    const node = await this.resolve(path);
    if (!isDir(node)) throw new FsError('ENOTDIR', path);
    return node;
  }

  /**
   * The directory's entries by local name, from cache while fresh. When the server cannot be asked
   * (unreachable, no answer, a 5xx), a listing seen before is served as it was, and fetched again
   * by the next lookup.
   */
  async list(dir: DirNode): Promise<ReadonlyMap<string, Node>> {
    const key = dirKey(dir);
    const cached = this.listings.get(key);
    if (this.isFresh(cached)) return cached.entries;
    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      if (this.opts.logger.isLevelEnabled('trace')) this.opts.logger.trace({ dir: key, cached: cached !== undefined }, 'listing');
      pending = this.fetch(dir).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    try {
      return (await pending).entries;
    } catch (err) {
      const last = this.listings.get(key);
      if (last === undefined || !serverAway(err)) throw err;
      if (this.opts.logger.isLevelEnabled('debug')) this.opts.logger.debug({ dir: key, err: String(err) }, 'listing served as last seen: the server cannot be asked');
      return last.entries;
    }
  }

  /**
   * A program reads the directory at `path` (readdir): when it walks its parent's directories one
   * after the other, the ones that follow are listed ahead (siblings-ahead.ts). No request here.
   */
  walking(path: string): void {
    const at = this.siblingsOf(path);
    if (at !== undefined) this.ahead.entered(at.dir, at.entries, at.name);
  }

  /** The entry's directory and that directory's cached listing (fresh or not), without a request. */
  siblingsOf(path: string): { readonly dir: DirNode; readonly entries: ReadonlyMap<string, Node>; readonly name: string } | undefined {
    if (path === '/') return undefined;
    const { parent, name } = parentAndName(path);
    const dir = this.resolveCached(parent);
    if (dir === undefined || !isDir(dir)) return undefined;
    const entries = this.cached(dir);
    return entries === undefined ? undefined : { dir, entries, name };
  }

  /** A cached listing, fresh or not, without fetching (for local edits). */
  cached(dir: DirNode): Map<string, Node> | undefined {
    return this.listings.get(dirKey(dir))?.entries;
  }

  /**
   * The node at `path` as the cached listings have it, fresh or not, without a request: where a
   * change made here is to be recorded (nothing cached along the way: nothing to record).
   */
  resolveCached(path: string): Node | undefined {
    let node: Node = this.rootNode;
    for (const part of splitPath(path)) {
      if (!isDir(node)) return undefined;
      const child: Node | undefined = this.cached(node)?.get(part);
      if (child === undefined) return undefined;
      node = child;
    }
    return node;
  }

  /**
   * Whether `path` names nothing in a fresh listing of its directory (no request): a new file there
   * may be created on Girder without looking for one of its name first.
   */
  nameFree(path: string): boolean {
    const slash = path.lastIndexOf('/');
    const dir = this.resolveCached(slash <= 0 ? '/' : path.slice(0, slash));
    if (dir === undefined || !isDir(dir)) return false;
    const listing = this.listings.get(dirKey(dir));
    return this.isFresh(listing) && !listing.entries.has(path.slice(slash + 1));
  }

  /** How many items' file lists are kept. */
  get itemFilesKept(): number {
    return this.itemFiles.size;
  }

  /** A folder this mount just created: it is empty, and listing it costs nothing for one TTL. */
  created(dir: FolderNode, name: string, folder: FolderNode): void {
    this.set(dir, name, folder);
    this.listings.set(dirKey(folder), { entries: new Map(), fetchedAt: Date.now() });
  }

  /**
   * The file at `name` of `dir` as Girder has it now, for an open: the listing says what the file
   * was, but a content replaced by one of the same size changes nothing a listing shows. When its
   * document was last seen more than a TTL ago, ask for the file itself (one request; an open sees
   * what closes before it wrote, as NFS's close-to-open consistency has it). When the server cannot
   * be asked, the file is what was last seen.
   */
  async current(dir: DirNode, name: string, node: FileNode): Promise<FileNode> {
    const checkedAt = this.itemFiles.checkedAt(node.item.id) ?? 0;
    if (Date.now() - checkedAt < this.opts.ttlMs) return node;
    let file: FileDoc;
    try {
      file = await this.store.getFile(node.file.id);
    } catch (err) {
      if (isMissing(err)) {
        this.itemFiles.forget(node.item.id);
        this.set(dir, name, undefined);
        throw new FsError('ENOENT', name, { cause: err });
      }
      if (serverAway(err)) return node;
      throw err;
    }
    this.itemFiles.confirmed(file);
    if (versionKeyOf(file) === versionKeyOf(node.file) && file.name === node.file.name) return node;
    if (file.name !== node.file.name && !node.inItemDir) {
      // Renamed: the item may no longer be a file of its own name; list it again.
      this.forgetDir(dir);
      throw new FsError('ESTALE', name);
    }
    const now: FileNode = { ...node, file };
    this.setEntry(dir, name, now);
    return now;
  }

  /**
   * Record a local change: the entry `name` of `dir` is now `node` (or gone, when undefined).
   * `exactItem`: a file node's item is Girder's own document, not one made up here.
   */
  set(dir: DirNode, name: string, node: Node | undefined, exactItem = true): void {
    const before = this.listings.get(dirKey(dir))?.entries.get(name);
    // The files of an item that left the mount's view are not kept: a long run of writes that
    // replace items (mv -f, rsync) would keep every one until the LRU's bound.
    if (before !== undefined && before.kind !== 'folder' && (node === undefined || node.kind === 'folder' || node.item.id !== before.item.id)) {
      this.itemFiles.forget(before.item.id);
    }
    this.setEntry(dir, name, node);
    if (node?.kind === 'file') {
      if (node.inItemDir) this.itemFiles.forget(node.item.id);
      else this.itemFiles.changedHere(node.item, [node.file], exactItem);
    }
    if (dir.kind === 'itemdir') this.itemFiles.forget(dir.item.id);
    if (node !== undefined && isDir(node)) this.forgetDir(node);
  }

  /** The file (this version of it) was written here at `mtime`: show that, not Girder's time. */
  rememberMtime(file: FileDoc, mtime: number): void {
    this.writtenMtimes.set(file.id, { created: file.created, mtime });
  }

  /** The node with the mtime its bytes were written with here, when they were. */
  private withMtime(node: Node): Node {
    if (node.kind !== 'file') return node;
    const written = this.writtenMtimes.get(node.file.id);
    if (written === undefined || written.created !== node.file.created) return node.mtime === undefined ? node : { ...node, mtime: undefined };
    return node.mtime === written.mtime ? node : { ...node, mtime: written.mtime };
  }

  /**
   * The entry `name` (Girder id `id`) of `dir` was removed here and its removal on Girder is
   * queued: gone from the listing now, and from listings fetched before the removal happens.
   */
  removed(dir: DirNode, name: string, id: string): void {
    this.set(dir, name, undefined);
    this.removalQueued(dirKey(dir), id);
  }

  /** A removal queued in an earlier run (resumed from the journal). */
  removalQueued(key: string, id: string): void {
    const ids = this.removing.get(key) ?? new Set<string>();
    ids.add(id);
    this.removing.set(key, ids);
  }

  /** The removal of `id` ended; when Girder refused it, the entry shows again (its listing is fetched anew). */
  removalEnded(key: string, id: string, removed: boolean): void {
    const ids = this.removing.get(key);
    ids?.delete(id);
    if (ids?.size === 0) this.removing.delete(key);
    if (!removed) this.forgetKey(key);
  }

  /** Drop a directory's listing (it changed in a way that is simpler to fetch again). */
  forgetDir(dir: DirNode): void {
    this.forgetKey(dirKey(dir));
    if (dir.kind === 'itemdir') this.itemFiles.forget(dir.item.id);
  }

  /** Drop the cached listing of the folder or item directory an upload target names. */
  forgetById(target: UploadTarget): void {
    const where = target.kind === 'file' ? target.fallback : target;
    if (where === undefined) return;
    this.forgetKey('folderId' in where ? folderKey(where.folderId) : itemDirKey(where.itemId));
  }

  /**
   * Resolves once no listing is being fetched (no request of the tree is left in flight); what
   * waited to be listed ahead is dropped: for the end of the mount.
   */
  async idle(): Promise<void> {
    await this.ahead.stop();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  /** SIGHUP: forget every listing and every file list. */
  clear(): void {
    for (const fetching of this.fetching.values()) fetching.dropped = true;
    this.ahead.clear();
    this.listings.clear();
    this.itemFiles.clear();
  }

  private freshOrFetching(dir: DirNode): boolean {
    const key = dirKey(dir);
    return this.inFlight.has(key) || this.isFresh(this.listings.get(key));
  }

  private isFresh(listing: Listing | undefined): listing is Listing {
    return listing !== undefined && Date.now() - listing.fetchedAt < this.opts.ttlMs;
  }

  private forgetKey(key: string): void {
    this.listings.delete(key);
    const fetching = this.fetching.get(key);
    if (fetching !== undefined) fetching.dropped = true;
  }

  private setEntry(dir: DirNode, name: string, given: Node | undefined): void {
    const node = given === undefined ? undefined : this.withMtime(given);
    const key = dirKey(dir);
    this.fetching.get(key)?.edits.push({ name, node });
    const listing = this.listings.get(key);
    if (listing === undefined) return;
    if (node === undefined) listing.entries.delete(name);
    else listing.entries.set(name, node);
  }

  private async fetch(dir: DirNode): Promise<Listing> {
    const key = dirKey(dir);
    for (let attempt = 1; ; attempt++) {
      const fetching: Fetching = { edits: [], dropped: false };
      this.fetching.set(key, fetching);
      let entries: Map<string, Node>;
      try {
        entries = dir.kind === 'folder' ? await this.fetchDir.folder(dir, this.listings.has(key), this.removing.get(key)) : await this.fetchDir.itemDir(dir);
      } finally {
        this.fetching.delete(key);
      }
      if (fetching.dropped && attempt < REFETCHES) {
        this.opts.logger.debug({ dir: key }, 'listing dropped while it was fetched; fetching it again');
        continue;
      }
      // Entries removed here whose removal has not reached Girder yet.
      const removing = this.removing.get(key);
      if (removing !== undefined) {
        for (const [name, node] of entries) if (removing.has(entryId(node))) entries.delete(name);
      }
      // What changed here meanwhile may or may not be in the answer: apply it again, in order.
      for (const edit of fetching.edits) {
        if (edit.node === undefined) entries.delete(edit.name);
        else entries.set(edit.name, edit.node);
      }
      const listing: Listing = { entries, fetchedAt: Date.now() };
      this.listings.set(key, listing);
      return listing;
    }
  }
}

/** A failure that says nothing of the entry asked for: the server is unreachable, silent, or answered 5xx. */
function serverAway(err: unknown): boolean {
  return isTransient(err);
}

/** The Girder id an entry of a listing stands for: the folder, the item (a plain file), or the file of an item directory. */
function entryId(node: Node): string {
  if (node.kind === 'folder') return node.folder.id;
  return node.kind === 'file' && node.inItemDir ? node.file.id : node.item.id;
}
