import type { ItemDoc, Meta } from '../girder/types.js';

/**
 * Girder has no symbolic links. A link is an item without files whose metadata holds its target
 * under this key (as gcsfuse keeps one in an object's metadata): made with one `POST /item`, read
 * from the listing with no request of its own.
 */
export const SYMLINK_KEY = 'fuse_symlink';

/** Linux's PATH_MAX: symlink(2) refuses longer targets with ENAMETOOLONG. */
export const MAX_TARGET_BYTES = 4095;

/** The target an item holds as a link, if it is one (no bytes in it: an item a file was added to is not). */
export function symlinkTargetOf(item: ItemDoc): string | undefined {
  const target = item.meta[SYMLINK_KEY];
  return item.size === 0 && typeof target === 'string' && target !== '' ? target : undefined;
}

export function symlinkMeta(target: string): Meta {
  return { [SYMLINK_KEY]: target };
}
