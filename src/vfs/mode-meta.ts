import type { ItemDoc, Meta } from '../girder/types.js';

/**
 * Girder has no modes. The bit programs depend on, execute (a compiled program, `chmod +x run.sh`),
 * is kept in the item's metadata under this key; an item without it holds a file that is not
 * executable. The other bits are accepted and not stored: a file is 0644 or 0755.
 */
export const MODE_KEY = 'fuse_mode';

const EXECUTABLE_MODE = '755';

export function isExecutableMode(mode: number): boolean {
  return (mode & 0o111) !== 0;
}

export function executableOf(item: ItemDoc): boolean {
  const stored = item.meta[MODE_KEY];
  return typeof stored === 'string' && /^[0-7]{1,4}$/.test(stored) && isExecutableMode(parseInt(stored, 8));
}

/** A null value deletes the key: a file that is not executable leaves no trace in the metadata. */
export function modeMeta(executable: boolean): Meta {
  return { [MODE_KEY]: executable ? EXECUTABLE_MODE : null };
}
