import { LRUCache } from 'lru-cache';
import { FsError } from '../errors.js';
import type { GirderStore } from '../girder/store.js';
import type { FileDoc, FolderDoc, ItemDoc } from '../girder/types.js';
import type { Logger } from '../log.js';
import { mapLimit } from './map-limit.js';
import { safeName, splitPath, suffixed } from './names.js';
import { dirKey, isDir, itemNode, type DirNode, type FolderNode, type Node } from './nodes.js';

/** Parallel `GET /item/{id}/files` requests while listing a folder. */
const FILE_LISTS_IN_FLIGHT = 16;
/** A listing refetched because a local change raced it is tried this often before it is kept. */
const RACE_RETRIES = 3;

interface Listing {
  readonly entries: Map<string, Node>;
  fetchedAt: number;
}

export interface TreeOptions {
  /** How long a listing answers lookups before it is fetched again (0 = always). */
  readonly ttlMs: number;
  readonly maxDirs?: number;
  readonly logger: Logger;
}

/**
 * The Girder-to-file mapping with listings cached for the TTL: one listing answers lookups and
 * attributes of all its children, so `ls -l`, `find` and `du` cost one listing per directory.
 * Local mutations edit cached listings in place.
 */
export class Tree {
  private readonly listings: LRUCache<string, Listing>;
  private readonly inFlight = new Map<string, Promise<Listing>>();
  /** Counts local changes per directory, so a listing fetched across a change is not kept. */
  private readonly changes = new Map<string, number>();
  private rootNode: FolderNode;

  constructor(private readonly store: GirderStore, root: FolderDoc, private readonly opts: TreeOptions) {
    this.rootNode = { kind: 'folder', folder: root };
    this.listings = new LRUCache({ max: opts.maxDirs ?? 20_000 });
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

  /** The directory's entries by local name, from cache while fresh. */
  async list(dir: DirNode): Promise<ReadonlyMap<string, Node>> {
    const key = dirKey(dir);
    const cached = this.listings.get(key);
    if (cached !== undefined && Date.now() - cached.fetchedAt < this.opts.ttlMs) return cached.entries;
    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      pending = this.fetch(dir).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return (await pending).entries;
  }

  /** A cached listing, fresh or not, without fetching (for local edits). */
  cached(dir: DirNode): Map<string, Node> | undefined {
    return this.listings.get(dirKey(dir))?.entries;
  }

  /** Record a local change: the entry `name` of `dir` is now `node` (or gone, when undefined). */
  set(dir: DirNode, name: string, node: Node | undefined): void {
    const key = dirKey(dir);
    this.changes.set(key, (this.changes.get(key) ?? 0) + 1);
    const listing = this.listings.get(key);
    if (listing === undefined) return;
    if (node === undefined) listing.entries.delete(name);
    else listing.entries.set(name, node);
    if (node !== undefined && isDir(node)) this.forgetDir(node);
  }

  /** Drop a directory's listing (it changed in a way that is simpler to fetch again). */
  forgetDir(dir: DirNode): void {
    const key = dirKey(dir);
    this.changes.set(key, (this.changes.get(key) ?? 0) + 1);
    this.listings.delete(key);
  }

  /** Resolves once no listing is being fetched (no request of the tree is left in flight). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  /** SIGHUP: forget every listing. */
  clear(): void {
    for (const key of this.listings.keys()) this.changes.set(key, (this.changes.get(key) ?? 0) + 1);
    this.listings.clear();
  }

  private async fetch(dir: DirNode): Promise<Listing> {
    const key = dirKey(dir);
    for (let attempt = 1; ; attempt++) {
      const before = this.changes.get(key) ?? 0;
      const entries = dir.kind === 'folder' ? await this.fetchFolder(dir) : await this.fetchItem(dir);
      const listing: Listing = { entries, fetchedAt: Date.now() };
      if ((this.changes.get(key) ?? 0) === before || attempt >= RACE_RETRIES) {
        this.listings.set(key, listing);
        return listing;
      }
      this.opts.logger.debug({ dir: key }, 'listing raced a local change; fetching it again');
    }
  }

  private async fetchFolder(dir: FolderNode): Promise<Map<string, Node>> {
    const id = dir.folder.id;
    const [folders, items] = await Promise.all([this.store.listFolders(id), this.store.listItems(id)]);
    const access = dir.folder.accessLevel;
    const itemNodes = await mapLimit(items, FILE_LISTS_IN_FLIGHT, async (item: ItemDoc) =>
      itemNode(item, await this.store.listFiles(item.id), access),
    );
    const named: Array<{ id: string; name: string; node: Node }> = [
      ...folders.map((folder) => ({ id: folder.id, name: folder.name, node: { kind: 'folder', folder } as Node })),
      ...itemNodes.map((node) => ({ id: node.item.id, name: node.item.name, node: node as Node })),
    ];
    return nameEntries(named);
  }

  private async fetchItem(dir: DirNode & { kind: 'itemdir' }): Promise<Map<string, Node>> {
    const files = await this.store.listFiles(dir.item.id);
    return nameEntries(
      files.map((file: FileDoc) => ({
        id: file.id,
        name: file.name,
        node: { kind: 'file', item: dir.item, file, inItemDir: true, access: dir.access } as Node,
      })),
    );
  }
}

/**
 * Local names for Girder entries: made safe, and where two end up alike the one with the later id
 * gets a stable `~<id6>` suffix, so nothing is hidden and names do not move between listings.
 */
export function nameEntries(entries: Array<{ id: string; name: string; node: Node }>): Map<string, Node> {
  const out = new Map<string, Node>();
  const sorted = [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const entry of sorted) {
    let name = safeName(entry.name);
    if (out.has(name)) name = safeName(suffixed(name, entry.id));
    out.set(name, entry.node);
  }
  return out;
}
