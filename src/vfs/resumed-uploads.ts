import { parentOf, type VfsContext } from './context.js';

/**
 * An upload resumed from the journal after a restart finished: the file it wrote has no local
 * copy here, so the listing of its directory is fetched again.
 */
export async function placeFinishedUpload(ctx: VfsContext, path: string): Promise<void> {
  try {
    const { dir } = await parentOf(ctx, path);
    ctx.tree.forgetDir(dir);
  } catch {
    // The directory is gone or not listed: nothing cached to correct.
  }
}
