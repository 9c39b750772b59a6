/**
 * SHA-512s Girder gives that this process knows to be wrong. hashsum_download hashes a file once
 * (auto_compute, or POST /file/{id}/hashsum) wherever the assetstore does not hash uploads itself
 * (S3), and keeps that hash when the contents are replaced: after PUT /file/{id}/contents the file
 * still claims its old contents' SHA-512, and so does every server-side copy made of it later. A
 * hash known to be wrong is never passed on: an identical re-copy must not be skipped because of
 * it, nor a server-side copy made from it. (A file replaced by another client, or before this
 * process started, cannot be known; girder-api.md and the README say so.)
 */
import type { Logger } from '../log.js';
import type { FileDoc } from './types.js';

export class StaleHashes {
  private readonly byFile = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  /** New contents whose hash is `sent` went into `file`: when Girder answers another hash, it is stale. */
  afterUpload(file: FileDoc, sent: string | undefined): FileDoc {
    if (sent === undefined || file.sha512 === undefined) return file;
    if (file.sha512 === sent) {
      this.byFile.delete(file.id);
      return file;
    }
    this.byFile.set(file.id, file.sha512);
    this.log.warn({ fileId: file.id }, "Girder kept the old contents' SHA-512 for a replaced file (hashsum_download on an S3 assetstore); it is not used");
    return withoutHash(file);
  }

  /** A server-side copy of `sourceId` claims the source's hash, stale or not. */
  copied(sourceId: string, copy: FileDoc): FileDoc {
    const stale = this.byFile.get(sourceId);
    if (stale !== undefined && copy.sha512 === stale) this.byFile.set(copy.id, stale);
    return this.clean(copy);
  }

  isStale(file: FileDoc): boolean {
    return file.sha512 !== undefined && this.byFile.get(file.id) === file.sha512;
  }

  /** The document as it may be passed on: without a hash known to be wrong. */
  clean(file: FileDoc): FileDoc {
    return this.isStale(file) ? withoutHash(file) : file;
  }
}

function withoutHash(file: FileDoc): FileDoc {
  const copy: { -readonly [K in keyof FileDoc]: FileDoc[K] } = { ...file };
  delete copy.sha512;
  return copy;
}
