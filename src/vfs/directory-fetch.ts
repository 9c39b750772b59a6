import { isMissing } from '../girder/girder-error.js';
import type { FolderContents, GirderStore } from '../girder/store.js';
import type { FileDoc, FolderDoc, ItemDoc } from '../girder/types.js';
import type { ItemFiles } from './item-files.js';
import { safeName, suffixed } from './names.js';
import { itemNode, type DirNode, type FolderNode, type Node } from './nodes.js';
import { Slots } from './slots.js';
import { symlinkTargetOf } from './symlink-meta.js';

/**
 * Parallel `GET /item/{id}/files` requests for the items whose files are not known, over all the
 * listings being fetched (a walk's own and those listed ahead of it): listing ahead adds no load.
 */
const FILE_LISTS_IN_FLIGHT = 16;

/**
 * A directory's entries as Girder has them now, with the fewest requests: the listing plugin's
 * pages, or Girder's own with the files of unchanged items kept (item-files.ts). Tree caches what
 * this fetches.
 */
export class DirectoryFetch {
  private readonly fileLists = new Slots(FILE_LISTS_IN_FLIGHT);

  constructor(
    private readonly store: GirderStore,
    private readonly itemFiles: ItemFiles,
    /** A file node as the tree shows it (with the mtime it was written with here). */
    private readonly shown: (node: Node) => Node,
  ) {}

  /**
   * A folder seen for the first time is listed with the listing plugin's pages when the server has
   * it (every item's files included). One listed before is listed with Girder's own pages, and its
   * unchanged items keep the files they had (ItemFiles): no file is sent again. Only when many of
   * its items are new does the plugin list it again, rather than a request per new item. Items in
   * `removing` (removed here, their DELETE still queued) are left out before their files are asked
   * for: `rm -r` of a big folder on a busy server otherwise asks for every one at each TTL.
   */
  async folder(dir: FolderNode, listedBefore: boolean, removing?: ReadonlySet<string>): Promise<Map<string, Node>> {
    const id = dir.folder.id;
    if (!listedBefore) {
      const contents = await this.pluginPages(id);
      if (contents !== undefined) return this.folderEntries(dir, contents.folders, contents.items);
    }
    const [folders, allItems] = await Promise.all([this.store.listFolders(id), this.store.listItems(id)]);
    const listedItems = removing === undefined ? allItems : allItems.filter((item) => !removing.has(item.id));
    if (listedBefore && listedItems.filter((item) => this.knownFiles(item) === undefined).length > FILE_LISTS_IN_FLIGHT) {
      const contents = await this.pluginPages(id);
      if (contents !== undefined) return this.folderEntries(dir, contents.folders, contents.items);
    }
    const listed = await Promise.all(listedItems.map(async (item: ItemDoc) => {
      const known = this.knownFiles(item);
      if (known !== undefined) return { item, files: known };
      let files: readonly FileDoc[];
      let sentAt = 0;
      try {
        files = await this.fileLists.run(() => {
          sentAt = Date.now();
          return this.store.listFiles(item.id);
        });
      } catch (err) {
        // Deleted since the item page was read (an rm or a replace elsewhere in the folder): it
        // is not there, and the listing, with every lookup in it, must not fail for it.
        if (isMissing(err, 'item')) return undefined;
        throw err;
      }
      this.itemFiles.fetched(item, files, sentAt);
      return { item, files };
    }));
    const items = listed.filter((entry): entry is { item: ItemDoc; files: readonly FileDoc[] } => entry !== undefined);
    return this.folderEntries(dir, folders, items);
  }

  /** Files known without asking: those of an unchanged item, or none for a symbolic link. */
  private knownFiles(item: ItemDoc): readonly FileDoc[] | undefined {
    return symlinkTargetOf(item) !== undefined ? [] : this.itemFiles.get(item);
  }

  /** The listing plugin's pages of a folder, their file lists noted; undefined without the plugin. */
  private async pluginPages(id: string): Promise<FolderContents | undefined> {
    const sentAt = Date.now();
    const contents = await this.store.folderContents(id);
    if (contents === undefined) return undefined;
    for (const { item, files } of contents.items) this.itemFiles.fetched(item, files, sentAt);
    return contents;
  }

  private folderEntries(dir: FolderNode, folders: readonly FolderDoc[], items: ReadonlyArray<{ item: ItemDoc; files: readonly FileDoc[] }>): Map<string, Node> {
    const access = dir.folder.accessLevel;
    const named: Array<{ id: string; name: string; node: Node }> = [
      ...folders.map((folder) => ({ id: folder.id, name: folder.name, node: { kind: 'folder', folder } as Node })),
      ...items.map(({ item, files }) => ({ id: item.id, name: item.name, node: this.shown(itemNode(item, [...files], access)) })),
    ];
    return nameEntries(named);
  }

  async itemDir(dir: DirNode & { kind: 'itemdir' }): Promise<Map<string, Node>> {
    const sentAt = Date.now();
    const files = await this.store.listFiles(dir.item.id);
    this.itemFiles.fetched(dir.item, files, sentAt);
    return nameEntries(
      files.map((file: FileDoc) => ({
        id: file.id,
        name: file.name,
        node: this.shown({ kind: 'file', item: dir.item, file, inItemDir: true, access: dir.access }),
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
