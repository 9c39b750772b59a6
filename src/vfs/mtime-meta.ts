import type { FileDoc, ItemDoc, Meta } from '../girder/types.js';

/**
 * A program's own mtime (touch, cp -p, rsync -a) is kept in the item's metadata under this key as
 * "<mtime ms>:<file created ms>". It applies only while the file's `created` matches: a content
 * replacement renews `created` (girder-api.md section 8), and then the new content's time wins.
 */
export const MTIME_KEY = 'fuse_mtime';

/**
 * A file's mtime. DESIGN.md says newest(created, updated), but `updated` moves only on renames and
 * MIME changes while a content replacement renews `created`; `created` is the content's time.
 */
export function mtimeOf(item: ItemDoc, file: FileDoc): number {
  const stored = item.meta[MTIME_KEY];
  if (typeof stored === 'string') {
    const [mtime, created] = stored.split(':').map(Number);
    if (created === file.created && Number.isFinite(mtime)) return mtime as number;
  }
  return file.created;
}

export function mtimeMeta(mtime: number, file: FileDoc): Meta {
  return { [MTIME_KEY]: `${Math.round(mtime)}:${file.created}` };
}
