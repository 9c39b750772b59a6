import { unlink, utimes } from 'node:fs/promises';
import { toFsError } from './fs-error.js';
import { afterUpload } from './after-upload.js';
import type { VfsContext } from './context.js';
import type { LocalFile } from './local-file.js';
import type { DataReader, UploadResult, Uploads } from './ports.js';
import { UploadCancelledError } from './writeback/types.js';

/** How long a close waits to learn whether Girder already has the file's bytes. */
const SAME_CHECK_MS = 3000;

/**
 * Hands a closed file's bytes to the upload queue (unless Girder has them already) and follows
 * the upload: when Girder has it, after-upload.ts records the new file, and OpenFiles lets the
 * local copy go once nothing else holds it.
 */
export class UploadHandoff {
  /** Work that follows an upload (placing the file in the tree, a remote-change check), still running. */
  private readonly followUps = new Set<Promise<unknown>>();

  constructor(
    private readonly ctx: VfsContext,
    private readonly uploads: Uploads,
    private readonly reader: DataReader,
  ) {}

  /** Journal the file's current bytes for upload; resolves once the job is durable. */
  async handOff(local: LocalFile): Promise<void> {
    if (await this.sameAsServer(local)) {
      local.markSameAsServer(); // rewritten with the bytes Girder has: nothing to sync, journal or send
      return;
    }
    const { path: tempPath, sha512 } = await local.snapshot().catch((err: unknown) => {
      throw toFsError(err);
    });
    // After a restart the journaled file shows its data file's mtime (LocalFile.adopt): make that
    // the file's own, not the moment the write thread last wrote to it.
    const mtime = new Date(local.mtime);
    await utimes(tempPath, mtime, mtime).catch(() => undefined);
    const job = {
      path: local.path, key: local.key, target: local.target, tempPath, size: local.size,
      ...(sha512 !== undefined ? { sha512 } : {}),
      ...(local.isNew && this.ctx.tree.nameFree(local.path) ? { nameFree: true } : {}),
      // An earlier upload of this file still in flight changes the server's version itself.
      ...(local.target.kind === 'file' && local.remoteVersion !== undefined && !this.ctx.openFiles.uploading(local) ? { openedVersion: local.remoteVersion } : {}),
    };
    let done: Promise<UploadResult>;
    try {
      ({ done } = await this.uploads.submit(job));
    } catch (err) {
      // Not journaled (e.g. the cache disk is full): the bytes are still only here.
      local.markDirty();
      await unlink(tempPath).catch(() => undefined);
      throw toFsError(err);
    }
    this.follow(local, done);
  }

  /**
   * Follow an upload of the local copy, which stays (and serves the path) until it settles. The
   * queue logs where the bytes are when it does not reach Girder: kept in lost+found, or still
   * journaled when the daemon stops (not a failure, and not logged per file).
   */
  follow(local: LocalFile, done: Promise<UploadResult>): void {
    void this.followed(this.ctx.openFiles.trackUpload(local, done.then(
      async (result) => {
        await afterUpload(this.ctx, this.reader, local, result);
        return result;
      },
      (err: unknown) => {
        if (!(err instanceof UploadCancelledError)) local.uploadFailed(err);
        return undefined;
      },
    )));
  }

  /** Resolves once the work that follows uploads is done (no request of it is left in flight). */
  async idle(): Promise<void> {
    while (this.followUps.size > 0) await Promise.allSettled([...this.followUps]);
  }

  private followed<T>(work: Promise<T>): Promise<T> {
    this.followUps.add(work);
    void work.finally(() => this.followUps.delete(work)).catch(() => undefined);
    return work;
  }

  /**
   * The file holds exactly the bytes of its Girder file, as it is now (an identical re-copy). Only
   * asked when the hash is at hand; any doubt (another upload of it in flight, an mtime or a mode to store,
   * the server not answering) says no, and the normal upload path decides.
   */
  private async sameAsServer(local: LocalFile): Promise<boolean> {
    const target = local.target;
    if (target.kind !== 'file' || target.remoteSha512 === undefined) return false;
    if (this.ctx.openFiles.uploading(local) || local.explicitMtime !== undefined || local.modeChanged) return false;
    const sha512 = await local.digest().catch((err: unknown) => {
      throw toFsError(err);
    });
    if (sha512 !== target.remoteSha512) return false;
    // A close must not wait on a slow server for a shortcut: no quick answer, no shortcut.
    const now = await this.ctx.store.getFile(target.fileId, { signal: AbortSignal.timeout(SAME_CHECK_MS) }).catch(() => undefined);
    return now?.sha512 === sha512 && now.size === local.size;
  }
}


