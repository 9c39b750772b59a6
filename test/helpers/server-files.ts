// What the server holds, for tests that write through the mount and then check Girder over REST;
// and a content replacement as another Girder client would make it.
import type { RawFile, RawItem, Rest } from './girder-rest.js';
import { run, shellQuote } from './mount.js';
import { withTrueSha512 } from './remote-tree.js';
import { waitFor } from './wait.js';

/** Items of a folder whose name is `name` or a Girder clash rename of it (`name (1)`, ...). */
export async function itemsLike(api: Rest, folderId: string, name: string): Promise<RawItem[]> {
  const clash = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( \\(\\d+\\))?$`);
  return (await api.listItems(folderId)).filter((i) => clash.test(i.name));
}

/**
 * The single file of the item `name` in a folder (undefined if there is no such item yet), with
 * the SHA-512 of its bytes (remote-tree.ts withTrueSha512: on S3 Girder's may be missing or stale).
 */
export async function fileOf(api: Rest, folderId: string, name: string): Promise<RawFile | undefined> {
  const item = (await api.listItems(folderId)).find((i) => i.name === name);
  if (item === undefined) return undefined;
  const files = await api.listFiles(item._id);
  return files.length === 1 && files[0] !== undefined ? withTrueSha512(api, files[0]) : undefined;
}

/** Waits until the item `name` holds one file with this SHA-512; resolves with it. */
export async function waitForServerFile(
  api: Rest,
  folderId: string,
  name: string,
  sha512: string,
  timeoutMs = 120_000,
): Promise<RawFile> {
  let last = 'no such item';
  try {
    return await waitFor(
      async () => {
        const file = await fileOf(api, folderId, name);
        last = file === undefined ? 'no such item (or not one file)' : `size ${file.size}, sha512 ${file.sha512?.slice(0, 16)}...`;
        return file !== undefined && file.sha512 === sha512 ? file : undefined;
      },
      { timeoutMs, intervalMs: 250, what: `${name} on the server with sha512 ${sha512.slice(0, 16)}...` },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${last}`);
  }
}

/** Replaces a file's contents as another client would: PUT /file/{id}/contents, then one chunk. */
export async function replaceContents(api: Rest, fileId: string, data: Buffer): Promise<RawFile> {
  const upload = await api.put<{ _id: string; _modelType?: string }>(`/file/${fileId}/contents`, { size: data.length });
  if (data.length === 0 || upload._modelType === 'file') return upload as unknown as RawFile;
  const doc = await api.post<RawFile>('/file/chunk', { uploadId: upload._id, offset: 0 }, data);
  if (doc._modelType !== 'file') throw new Error(`replacing ${fileId} did not finish: ${JSON.stringify(doc)}`);
  return doc;
}

/** `sha512sum <path>` through the shell (so through the mount); the hex digest, or the error. */
export async function sha512sumOf(path: string, timeoutMs = 300_000): Promise<{ sha512?: string; stderr: string; code: number | null }> {
  const r = await run(`sha512sum ${shellQuote(path)}`, { timeoutMs });
  const sha512 = r.code === 0 ? r.stdout.split(/\s+/)[0] : undefined;
  return { ...(sha512 !== undefined ? { sha512 } : {}), stderr: r.stderr, code: r.code };
}
