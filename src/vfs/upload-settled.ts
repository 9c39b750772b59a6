import type { Uploads } from './ports.js';

/**
 * Wait for a file's pending uploads to end (resolves undefined), unless one waits (credentials
 * refused, server away...), which may last for hours: then resolves at once with why.
 * `newestUpload` is asked anew each turn: a close meanwhile hands off a newer upload.
 */
export async function uploadedOrWaiting(uploads: Uploads, key: string, newestUpload: () => Promise<unknown>): Promise<string | undefined> {
  for (;;) {
    const why = uploads.waitingFor(key);
    if (why !== undefined) return why;
    const change = uploads.nextChange();
    if (await Promise.race([newestUpload().then(() => true), change.then(() => false)])) return undefined;
  }
}
