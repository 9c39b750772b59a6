import type { LRUCache } from 'lru-cache';
import type { FileDoc, ItemDoc } from '../girder/types.js';
import { growingLru } from './growing-lru.js';

/**
 * Each item's files as last seen, kept while the item is unchanged, so a folder listed again costs
 * its folder and item pages only, not one `GET /item/{id}/files` per item.
 *
 * What tells that an item's files changed (girder-api.md section 8, girder's models/item.py and
 * models/file.py): adding, removing or replacing a file moves the item's `size` (kept by $inc) but
 * never its `updated`, which moves on a rename, a move or a metadata change. So a file list is kept
 * while the item's `size` and `updated` are the same. What that cannot see: a file replaced by
 * one of the same size (only the file's `created` and `sha512` move), renamed, or a 0-byte file
 * added or removed. Those are caught when the file is opened after the TTL (Tree.current asks for
 * the file itself), and by the listing plugin, which always sends the files. An item seen with no
 * file is asked again at every listing: Girder makes an upload's item before its file (models/
 * upload.py finalizeUpload), and a 0-byte file arriving then moves nothing the listing shows.
 */
interface Entry {
  /** The item's `updated` as Girder has it; undefined after a change made here, until a listing says. */
  updated: number | undefined;
  size: number;
  files: readonly FileDoc[];
  /** When the file documents were last fetched or confirmed. */
  checkedAt: number;
}

export class ItemFiles {
  private readonly entries: LRUCache<string, Entry>;

  constructor(max = 100_000) {
    this.entries = growingLru(max);
  }

  /** The item's files as last seen, when the item is unchanged since. */
  get(item: ItemDoc): readonly FileDoc[] | undefined {
    const entry = this.entries.get(item.id);
    if (entry === undefined || entry.size !== item.size || entry.files.length === 0) return undefined;
    if (entry.updated === undefined) entry.updated = item.updated; // the first listing after a change made here
    else if (entry.updated !== item.updated) return undefined;
    return entry.files;
  }

  /**
   * Files fetched from Girder by a request sent at `sentAt`. What was learnt of the item since it
   * was sent (an upload from here that ended meanwhile) is newer, and is kept.
   */
  fetched(item: ItemDoc, files: readonly FileDoc[], sentAt: number): void {
    const known = this.entries.get(item.id);
    if (known !== undefined && known.checkedAt >= sentAt) return;
    this.entries.set(item.id, { updated: item.updated, size: item.size, files, checkedAt: sentAt });
  }

  /**
   * The files of an item a change made here left (an upload, a rename). `item` is what this mount
   * knows of it; `exact`: it is Girder's own document (else its `updated` is taken from the next
   * listing).
   */
  changedHere(item: ItemDoc, files: readonly FileDoc[], exact: boolean): void {
    const size = files.reduce((sum, f) => sum + f.size, 0);
    this.entries.set(item.id, { updated: exact ? item.updated : undefined, size, files, checkedAt: Date.now() });
  }

  /** When the item's file documents were last fetched or confirmed (undefined: unknown). */
  checkedAt(itemId: string): number | undefined {
    return this.entries.get(itemId)?.checkedAt;
  }

  /** Girder confirmed (or updated) one file of the item just now. */
  confirmed(file: FileDoc): void {
    const entry = this.entries.get(file.itemId);
    if (entry === undefined) return;
    entry.files = entry.files.map((f) => (f.id === file.id ? file : f));
    entry.size = entry.files.reduce((sum, f) => sum + f.size, 0);
    entry.checkedAt = Date.now();
  }

  get size(): number {
    return this.entries.size;
  }

  forget(itemId: string): void {
    this.entries.delete(itemId);
  }

  clear(): void {
    this.entries.clear();
  }
}
