import type { VfsContext } from './context.js';
import { parentAndName } from './names.js';
import { isDir } from './nodes.js';

/**
 * An upload resumed from the journal after a restart finished: the file it wrote has no local
 * copy here, so the cached listing of its directory, if any, is dropped (fetched again when used).
 */
export function placeFinishedUpload(ctx: VfsContext, path: string): void {
  const dir = ctx.tree.resolveCached(parentAndName(path).parent);
  if (dir !== undefined && isDir(dir)) ctx.tree.forgetDir(dir);
}
