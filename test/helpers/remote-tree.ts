// What the server holds under a folder, seen through REST only: path lookups and whole-tree
// listings (for comparisons with a local tree), to check what a mount did.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { RestError, type RawFile, type RawFolder, type RawItem, type Rest } from './girder-rest.js';

export type RemoteEntry =
  | { kind: 'folder'; folder: RawFolder }
  | { kind: 'item'; item: RawItem; files: RawFile[] };

/** One entry of a tree listing: a directory, or a file with its size and SHA-512. */
export type TreeEntry = 'dir' | { size: number; sha512: string };

function segments(relPath: string): string[] {
  return relPath.split('/').filter((s) => s !== '' && s !== '.');
}

/** The folder or item at `relPath` under folder `rootId` (by exact names), or undefined. */
export async function remoteLookup(api: Rest, rootId: string, relPath: string): Promise<RemoteEntry | undefined> {
  const parts = segments(relPath);
  let folderId = rootId;
  for (let i = 0; i < parts.length; i++) {
    const name = parts[i] as string;
    const folders = await api.get<RawFolder[]>('/folder', { parentType: 'folder', parentId: folderId, name, limit: 0 });
    const last = i === parts.length - 1;
    if (folders.length > 0) {
      if (last) return { kind: 'folder', folder: folders[0] as RawFolder };
      folderId = (folders[0] as RawFolder)._id;
      continue;
    }
    if (!last) return undefined;
    const items = await api.get<RawItem[]>('/item', { folderId, name, limit: 0 });
    if (items.length === 0) return undefined;
    const item = items[0] as RawItem;
    return { kind: 'item', item, files: await api.listFiles(item._id) };
  }
  const folder = await api.get<RawFolder>(`/folder/${rootId}`);
  return { kind: 'folder', folder };
}

/**
 * The file document with `sha512` as the SHA-512 of its bytes. On a filesystem assetstore that is
 * Girder's own; elsewhere (S3) it is hashed from a download: Girder's there may be missing, or the
 * old contents' (hashsum_download does not renew it when contents are replaced).
 */
export async function withTrueSha512(api: Rest, file: RawFile): Promise<RawFile> {
  if (api.assetstore === 'filesystem') return file;
  return { ...file, sha512: await api.downloadSha512(file._id) };
}

/** The single file of the item at `relPath` (an item with one file of its own name), else throws. */
export async function remoteFile(api: Rest, rootId: string, relPath: string): Promise<{ item: RawItem; file: RawFile }> {
  const entry = await remoteLookup(api, rootId, relPath);
  if (entry === undefined) throw new Error(`nothing at ${relPath} on the server`);
  if (entry.kind !== 'item') throw new Error(`${relPath} is a folder on the server`);
  const name = segments(relPath).pop();
  const [file] = entry.files;
  if (entry.files.length !== 1 || file === undefined || file.name !== name) {
    throw new Error(`${relPath} is not a single-file item: ${JSON.stringify(entry.files.map((f) => f.name))}`);
  }
  return { item: entry.item, file: await withTrueSha512(api, file) };
}

/**
 * Every folder and single-file item under `rootId`, by relative path (items with other shapes are
 * listed by file), with the SHA-512 of each file's bytes (withTrueSha512).
 */
export async function remoteTree(api: Rest, rootId: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const walk = async (folderId: string, prefix: string): Promise<void> => {
    for (const folder of await api.listFolders(folderId)) {
      out[prefix + folder.name] = 'dir';
      await walk(folder._id, `${prefix}${folder.name}/`);
    }
    for (const item of await api.listItems(folderId)) {
      const files = await Promise.all((await api.listFiles(item._id)).map((f) => withTrueSha512(api, f)));
      const only = files[0];
      if (files.length === 1 && only !== undefined && only.name === item.name) {
        out[prefix + item.name] = { size: only.size, sha512: only.sha512 ?? '(none)' };
        continue;
      }
      out[prefix + item.name] = 'dir';
      for (const f of files) out[`${prefix}${item.name}/${f.name}`] = { size: f.size, sha512: f.sha512 ?? '(none)' };
    }
  };
  await walk(rootId, '');
  return out;
}

/** The same listing for a local directory (never a mountpoint: this reads with fs calls). */
export async function localTree(root: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        out[prefix + entry.name] = 'dir';
        await walk(full, `${prefix}${entry.name}/`);
      } else if (entry.isFile()) {
        out[prefix + entry.name] = await fileDigest(full);
      }
    }
  };
  await walk(root, '');
  return out;
}

/** Size and SHA-512 of a local file, streamed. */
export async function fileDigest(file: string): Promise<{ size: number; sha512: string }> {
  const hash = createHash('sha512');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha512: hash.digest('hex') };
}

/** Whether the server still knows a folder or item id (Girder answers 400 for unknown ids). */
export async function exists(api: Rest, type: 'folder' | 'item' | 'file', id: string): Promise<boolean> {
  try {
    await api.get(`/${type}/${id}`);
    return true;
  } catch (err) {
    if (err instanceof RestError && err.status === 400) return false;
    throw err;
  }
}

/** Replaces a file's contents on the server (PUT /file/{id}/contents), as another client would. */
export async function replaceContents(api: Rest, fileId: string, data: Buffer): Promise<RawFile> {
  const upload = await api.put<{ _id: string; _modelType?: string }>(`/file/${fileId}/contents`, { size: data.length });
  if (upload._modelType === 'file') return upload as unknown as RawFile;
  const done = await api.post<RawFile>('/file/chunk', { uploadId: upload._id, offset: 0 }, data);
  if (done._modelType !== 'file') throw new Error(`replacing ${fileId} did not finish in one chunk`);
  return done;
}
