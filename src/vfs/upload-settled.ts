import type { LocalFile } from './local-file.js';
import type { Uploads } from './ports.js';

/**
 * Wait for a file's pending uploads to end (resolves undefined), unless one waits (credentials
 * refused, server away...), which may last for hours: then resolves at once with why.
 */
export async function uploadedOrWaiting(uploads: Uploads, local: LocalFile): Promise<string | undefined> {
  for (;;) {
    const why = uploads.waitingFor(local.key);
    if (why !== undefined) return why;
    const change = uploads.nextChange();
    if (await Promise.race([local.lastUpload.then(() => true), change.then(() => false)])) return undefined;
  }
}
