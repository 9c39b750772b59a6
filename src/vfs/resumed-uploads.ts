import { errorMessage } from '../errors.js';
import type { VfsContext } from './context.js';
import { LocalFile } from './local-file.js';
import { parentAndName } from './names.js';
import { isDir } from './nodes.js';
import type { Uploads } from './ports.js';
import type { UploadHandoff } from './upload-handoff.js';

/**
 * After a restart, each upload resumed from the journal shows at its path (size, mtime, its
 * bytes) until Girder has it, instead of the server's old version or nothing; it can be
 * opened, read and written like any file being written. Call before mounting.
 */
export async function showResumedUploads(ctx: VfsContext, uploads: Uploads, handoff: UploadHandoff, dataDir: string): Promise<void> {
  const newestFirst = [...uploads.resumed()].reverse();
  for (const { job, done } of newestFirst) {
    if (ctx.openFiles.has(job.path)) continue;
    let local: LocalFile;
    try {
      local = await LocalFile.adopt(dataDir, job.path, job.target, job.tempPath, job.key ?? job.path);
    } catch (err) {
      // ENOENT: it finished meanwhile, and Girder serves the path.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        ctx.logger.warn({ path: job.path, err: errorMessage(err) }, 'a resumed upload is not shown in the mount until it is done');
      }
      continue;
    }
    ctx.openFiles.add(local);
    handoff.follow(local, done);
  }
}

/**
 * An upload resumed from the journal after a restart finished: the file it wrote has no local
 * copy here, so the cached listing of its directory, if any, is dropped (fetched again when used).
 */
export function resumedUploadFinished(ctx: VfsContext, path: string): void {
  const dir = ctx.tree.resolveCached(parentAndName(path).parent);
  if (dir !== undefined && isDir(dir)) ctx.tree.forgetDir(dir);
}
