// A small REST client for tests, on Node's global fetch, independent of src/girder/:
// tests use it to prepare data on the server and to check what the mount did.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { AssetstoreKind, GirderServer, GirderServerInfo } from './girder-server.js';

export type Role = 'admin' | 'user';
export type Query = Record<string, string | number | boolean | undefined>;
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Raw Girder documents, as the server sends them (only the fields tests read are typed). */
export interface RawFolder {
  _id: string;
  _modelType: 'folder';
  name: string;
  parentId: string;
  parentCollection: string;
  size: number;
  meta: Record<string, Json>;
  created: string;
  updated: string;
  _accessLevel?: number;
}

export interface RawItem {
  _id: string;
  _modelType: 'item';
  name: string;
  folderId: string;
  size: number;
  meta: Record<string, Json>;
  created: string;
  updated: string;
}

export interface RawFile {
  _id: string;
  _modelType: 'file';
  name: string;
  itemId: string;
  size: number;
  mimeType: string;
  created: string;
  updated?: string;
  sha512?: string;
}

export interface UploadParent {
  type: 'folder' | 'item';
  id: string;
}

/** Girder's chunk size (girder_client's MAX_CHUNK_SIZE); non-final chunks must be >= 5 MiB. */
export const CHUNK_SIZE = 64 * 1024 * 1024;

export class RestError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${url} -> ${status}: ${body}`);
    this.name = 'RestError';
  }
}

type Body = Buffer | Json | undefined;

export interface Rest {
  readonly apiUrl: string;
  readonly role: Role;
  /** The server's current assetstore. */
  readonly assetstore: AssetstoreKind;
  token(): Promise<string>;
  get<T = Json>(path: string, query?: Query): Promise<T>;
  post<T = Json>(path: string, query?: Query, body?: Body): Promise<T>;
  put<T = Json>(path: string, query?: Query, body?: Body): Promise<T>;
  delete<T = Json>(path: string, query?: Query): Promise<T>;
  createFolder(parentId: string, name: string, parentType?: 'folder' | 'user' | 'collection'): Promise<RawFolder>;
  createItem(folderId: string, name: string): Promise<RawItem>;
  /** Uploads `data` in chunks of `chunkSize` (default 64 MiB; non-final chunks must be >= 5 MiB). */
  uploadBytes(parent: UploadParent, name: string, data: Buffer, chunkSize?: number): Promise<RawFile>;
  /** Streams a local file up in chunks of `chunkSize`, holding one chunk in memory at a time. */
  uploadFileFromDisk(parent: UploadParent, name: string, localPath: string, chunkSize?: number): Promise<RawFile>;
  listFolders(parentId: string, parentType?: 'folder' | 'user' | 'collection'): Promise<RawFolder[]>;
  listItems(folderId: string): Promise<RawItem[]>;
  listFiles(itemId: string): Promise<RawFile[]>;
  /**
   * SHA-512 of a file's bytes: Girder's own on a filesystem assetstore, else of the downloaded
   * bytes (on S3, hashsum_download keeps a replaced file's old SHA-512).
   */
  fileSha512(fileId: string): Promise<string>;
  download(fileId: string): Promise<Buffer>;
  /** SHA-512 of the bytes a download gives (following Girder's redirect), streamed. */
  downloadSha512(fileId: string): Promise<string>;
  setMeta(type: 'folder' | 'item', id: string, meta: Record<string, Json>): Promise<RawFolder | RawItem>;
}

function isSocketError(err: unknown): boolean {
  // Girder resets a keep-alive socket after rejecting a body it did not read (girder-api.md section 6)
  return err instanceof TypeError && err.message === 'fetch failed';
}

export function rest(server: GirderServer | GirderServerInfo, role: Role): Rest {
  const info = 'info' in server ? server.info : server;
  const apiUrl = info.apiUrl;
  let tokenPromise: Promise<string> | undefined;

  const url = (path: string, query?: Query): string => {
    const u = new URL(apiUrl + (path.startsWith('/') ? path : `/${path}`));
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) u.searchParams.set(k, String(v));
    }
    return u.toString();
  };

  const send = async (
    method: string,
    path: string,
    query: Query | undefined,
    body: Body,
    auth: boolean,
  ): Promise<Response> => {
    const headers: Record<string, string> = {};
    if (auth) headers['Girder-Token'] = await token();
    let payload: Uint8Array<ArrayBuffer> | string | undefined;
    if (Buffer.isBuffer(body)) {
      payload = new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.byteLength);
      headers['Content-Type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const target = url(path, query);
    const idempotent = method === 'GET' || method === 'HEAD';
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(target, { method, headers, body: payload });
      } catch (err) {
        if (idempotent && attempt < 3 && isSocketError(err)) continue;
        throw err;
      }
      if (!res.ok) throw new RestError(method, target, res.status, await res.text());
      return res;
    }
  };

  const json = async <T>(method: string, path: string, query?: Query, body?: Body): Promise<T> => {
    const res = await send(method, path, query, body, true);
    return (await res.json()) as T;
  };

  async function token(): Promise<string> {
    tokenPromise ??= (async () => {
      const account = info[role];
      const res = await fetch(url('/api_key/token'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ key: account.apiKey }).toString(),
      });
      const text = await res.text();
      if (!res.ok) throw new RestError('POST', url('/api_key/token'), res.status, text);
      return (JSON.parse(text) as { authToken: { token: string } }).authToken.token;
    })();
    tokenPromise.catch(() => {
      tokenPromise = undefined;
    });
    return tokenPromise;
  }

  /** Sends chunks in order; the final chunk answers with the file document. */
  const uploadChunks = async (
    parent: UploadParent,
    name: string,
    size: number,
    nextChunk: (offset: number) => Promise<Buffer>,
  ): Promise<RawFile> => {
    const started = await json<{ _id: string; _modelType?: string }>('POST', '/file', {
      parentType: parent.type,
      parentId: parent.id,
      name,
      size,
    });
    if (started._modelType === 'file') return started as unknown as RawFile; // size 0
    let offset = 0;
    let last: { _modelType?: string } = started;
    while (offset < size) {
      const chunk = await nextChunk(offset);
      if (chunk.length === 0) throw new Error(`upload of ${name}: source ended at ${offset} of ${size}`);
      last = await json('POST', '/file/chunk', { uploadId: started._id, offset }, chunk);
      offset += chunk.length;
    }
    if (last._modelType !== 'file') throw new Error(`upload of ${name} did not finish: ${JSON.stringify(last)}`);
    return last as unknown as RawFile;
  };

  const downloadSha512 = async (fileId: string): Promise<string> => {
    const res = await send('GET', `/file/${fileId}/download`, undefined, undefined, true);
    const hash = createHash('sha512');
    if (res.body !== null) for await (const chunk of res.body) hash.update(chunk);
    return hash.digest('hex');
  };

  return {
    apiUrl,
    role,
    assetstore: info.assetstore.type,
    token,
    get: (path, query) => json('GET', path, query),
    post: (path, query, body) => json('POST', path, query, body),
    put: (path, query, body) => json('PUT', path, query, body),
    delete: (path, query) => json('DELETE', path, query),

    createFolder: (parentId, name, parentType = 'folder') =>
      json<RawFolder>('POST', '/folder', { parentType, parentId, name }),
    createItem: (folderId, name) => json<RawItem>('POST', '/item', { folderId, name }),

    uploadBytes: (parent, name, data, chunkSize = CHUNK_SIZE) =>
      uploadChunks(parent, name, data.length, async (offset) =>
        data.subarray(offset, Math.min(offset + chunkSize, data.length)),
      ),

    async uploadFileFromDisk(parent, name, localPath, chunkSize = CHUNK_SIZE) {
      const fh = await open(localPath, 'r');
      try {
        const { size } = await fh.stat();
        const buffer = Buffer.allocUnsafe(Math.min(chunkSize, Math.max(size, 1)));
        return await uploadChunks(parent, name, size, async (offset) => {
          const want = Math.min(buffer.length, size - offset);
          let got = 0;
          while (got < want) {
            const { bytesRead } = await fh.read(buffer, got, want - got, offset + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          return buffer.subarray(0, got);
        });
      } finally {
        await fh.close();
      }
    },

    listFolders: (parentId, parentType = 'folder') =>
      json<RawFolder[]>('GET', '/folder', { parentType, parentId, limit: 0 }),
    listItems: (folderId) => json<RawItem[]>('GET', '/item', { folderId, limit: 0 }),
    listFiles: (itemId) => json<RawFile[]>('GET', `/item/${itemId}/files`, { limit: 0 }),

    async fileSha512(fileId) {
      if (info.assetstore.type !== 'filesystem') return downloadSha512(fileId);
      const file = await json<RawFile>('GET', `/file/${fileId}`);
      if (!file.sha512) throw new Error(`file ${fileId} has no sha512 (is hashsum_download loaded?)`);
      return file.sha512;
    },

    async download(fileId) {
      const res = await send('GET', `/file/${fileId}/download`, undefined, undefined, true);
      return Buffer.from(await res.arrayBuffer());
    },

    downloadSha512,

    setMeta: (type, id, meta) => json<RawFolder | RawItem>('PUT', `/${type}/${id}/metadata`, undefined, meta),
  };
}
