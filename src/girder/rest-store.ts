/** GirderStore over Girder's REST API (girder-api.md). */
import type { IncomingHttpHeaders } from 'node:http';
import { GirderError, isMissing, isTooDeep, isTransient } from './girder-error.js';
import type { Logger } from '../log.js';
import type { GirderClient } from './client.js';
import type { Query } from './request-options.js';
import { asArray, decodeFile, decodeFolder, decodeItem, decodeUser } from './decode.js';
import { readRange } from './download.js';
import { HttpRangeStream, type RangeStreamOptions } from './range-stream.js';
import { decodeListingPage, isNoListingRoute, LISTING_MAX_LIMIT } from './listing-page.js';
import { StaleHashes } from './stale-hashes.js';
import type { FileParent, FileRef, FolderContents, GirderStore, RangeStream } from './store.js';
import type { FileDoc, FolderDoc, ItemDoc, Meta, UploadHooks, UploadSource, UserDoc } from './types.js';
import { CHUNK_SIZE, upload } from './upload.js';

export interface RestStoreOptions {
  /** Entries per listing request (default 5000). */
  pageSize?: number;
  /** Upload chunk size (default 64 MiB; Girder refuses non-final chunks under 5 MiB). */
  chunkSize?: number;
  /** GET sizes of streamed reads. */
  stream?: RangeStreamOptions;
}

const NO_HASH = '0'.repeat(128);

export class RestStore implements GirderStore {
  private readonly pageSize: number;
  private readonly chunkSize: number;
  private readonly streamOptions: RangeStreamOptions;
  private hashsum: Promise<boolean> | null = null;
  /** Whether the server has the listing plugin's route; undefined until an answer said. */
  private listingRoute: boolean | undefined;
  private readonly staleHashes: StaleHashes;

  constructor(
    private readonly client: GirderClient,
    private readonly log: Logger,
    options: RestStoreOptions = {},
  ) {
    this.pageSize = Math.max(1, options.pageSize ?? 5000);
    this.chunkSize = options.chunkSize ?? CHUNK_SIZE;
    this.streamOptions = options.stream ?? {};
    this.staleHashes = new StaleHashes(log);
  }

  async me(): Promise<UserDoc | null> {
    const data = await this.client.get('/user/me');
    return data === null ? null : decodeUser(data);
  }

  /** Probed once: the plugin's route answers [] for an unknown hash; without it, 400 "No matching route". */
  hasHashsum(): Promise<boolean> {
    if (this.hashsum === null) {
      const probe = this.client.get(`/file/hashsum/sha512/${NO_HASH}`).then(
        (data) => Array.isArray(data),
        (err: unknown) => {
          if (err instanceof GirderError && err.status >= 400 && err.status < 500 && err.status !== 401) return false;
          this.hashsum = null; // transient: ask again next time
          throw err;
        },
      );
      this.hashsum = probe;
      void probe.then((has) => this.log.debug({ hashsum: has }, 'probed the hashsum_download plugin'), () => undefined);
    }
    return this.hashsum;
  }

  async getFolder(id: string): Promise<FolderDoc> {
    return decodeFolder(await this.client.get(`/folder/${enc(id)}`));
  }

  async getItem(id: string): Promise<ItemDoc> {
    return decodeItem(await this.client.get(`/item/${enc(id)}`));
  }

  async getFile(id: string, options: { signal?: AbortSignal } = {}): Promise<FileDoc> {
    return this.fileOf(await this.client.get(`/file/${enc(id)}`, undefined, options));
  }

  listFolders(parentId: string): Promise<FolderDoc[]> {
    return this.listAll('/folder', { parentType: 'folder', parentId }, decodeFolder);
  }

  listItems(folderId: string): Promise<ItemDoc[]> {
    return this.listAll('/item', { folderId }, decodeItem);
  }

  listFiles(itemId: string): Promise<FileDoc[]> {
    return this.listAll(`/item/${enc(itemId)}/files`, {}, (doc) => this.fileOf(doc));
  }

  findItems(folderId: string, name: string): Promise<ItemDoc[]> {
    return this.listAll('/item', { folderId, name }, decodeItem);
  }

  /**
   * Ask once whether the server has the listing plugin (GET /folder/{id}/listing?limit=0 on the
   * mounted folder). A failure that says nothing (the server down, a 401) leaves it to be asked
   * again by the next listing.
   */
  async probeListingRoute(folderId: string): Promise<boolean | undefined> {
    if (this.listingRoute !== undefined) return this.listingRoute;
    try {
      decodeListingPage(await this.client.get(`/folder/${enc(folderId)}/listing`, { limit: 0 }));
      this.listingRoute = true;
    } catch (err) {
      if (isNoListingRoute(err)) this.listingRoute = false;
      else if (!(err instanceof GirderError)) throw err;
    }
    if (this.listingRoute !== undefined) this.log.info({ listingPlugin: this.listingRoute }, this.listingRoute ? 'the server has the listing plugin: one request per page of a folder' : 'the server has no listing plugin: folders are listed with Girder\'s own routes');
    return this.listingRoute;
  }

  async folderContents(folderId: string): Promise<FolderContents | undefined> {
    if (this.listingRoute === false) return undefined;
    const limit = Math.min(this.pageSize, LISTING_MAX_LIMIT);
    for (let attempt = 0; ; attempt++) {
      const folders: FolderContents['folders'][number][] = [];
      const items: Array<FolderContents['items'][number]> = [];
      let totals: string | undefined;
      let changed = false;
      for (let offset = 0; ;) {
        let data: unknown;
        try {
          data = await this.client.get(`/folder/${enc(folderId)}/listing`, { limit, offset });
        } catch (err) {
          if (this.listingRoute === undefined && isNoListingRoute(err) && !isMissing(err)) {
            this.listingRoute = false;
            return undefined;
          }
          throw err;
        }
        this.listingRoute = true;
        const page = decodeListingPage(data);
        const now = `${page.totalFolders}:${page.totalItems}`;
        if (totals !== undefined && totals !== now) changed = true;
        totals = now;
        folders.push(...page.folders);
        items.push(...page.items.map(({ item, files }) => ({ item, files: files.map((f) => this.staleHashes.clean(f)) })));
        offset += page.folders.length + page.items.length;
        if (offset >= page.totalFolders + page.totalItems || page.folders.length + page.items.length === 0) break;
      }
      // Pages are separate queries: a folder that changed between them is listed again (a few times).
      if (!changed || attempt >= 2) return { folders, items };
    }
  }

  readRange(file: FileRef, offset: number, length: number, into: Buffer, intoOffset = 0, onProgress?: (filled: number) => void): Promise<number> {
    return readRange(this.client, file, offset, length, into, intoOffset, onProgress);
  }

  streamRange(file: FileRef, offset: number, length: number): RangeStream {
    return new HttpRangeStream(this.client, file, offset, length, this.streamOptions);
  }

  async createFolder(parentId: string, name: string): Promise<FolderDoc> {
    return decodeFolder(await this.client.post('/folder', { parentType: 'folder', parentId, name }));
  }

  async createItem(folderId: string, name: string, meta?: Meta): Promise<ItemDoc> {
    return decodeItem(await this.client.post('/item', { folderId, name, ...(meta === undefined ? {} : { metadata: JSON.stringify(meta) }) }));
  }

  async createFile(parent: FileParent, name: string, source: UploadSource, hooks?: UploadHooks): Promise<FileDoc> {
    const target = 'folderId' in parent
      ? { kind: 'new' as const, parentType: 'folder' as const, parentId: parent.folderId, name }
      : { kind: 'new' as const, parentType: 'item' as const, parentId: parent.itemId, name };
    return this.uploaded(await upload(this.client, target, source, hooks, { chunkSize: this.chunkSize }), source.sha512);
  }

  async replaceFile(fileId: string, source: UploadSource, hooks?: UploadHooks): Promise<FileDoc> {
    return this.uploaded(await upload(this.client, { kind: 'replace', fileId }, source, hooks, { chunkSize: this.chunkSize }), source.sha512);
  }

  async filesBySha512(sha512: string): Promise<FileDoc[]> {
    if (!/^[0-9a-fA-F]{128}$/.test(sha512) || !(await this.hasHashsum())) return [];
    const data = await this.client.get(`/file/hashsum/sha512/${sha512.toLowerCase()}`);
    return asArray(data, 'file list').map(decodeFile).filter((f) => !this.staleHashes.isStale(f));
  }

  async copyFile(fileId: string, itemId: string): Promise<FileDoc> {
    return this.staleHashes.copied(fileId, decodeFile(await this.client.post(`/file/${enc(fileId)}/copy`, { itemId })));
  }

  async renameFile(fileId: string, name: string): Promise<FileDoc> {
    const path = `/file/${enc(fileId)}`;
    try {
      return this.fileOf(await this.client.put(path, { name }, { idempotent: false }));
    } catch (err) {
      if (!(err instanceof GirderError) || !isTransient(err)) throw err;
      // Girder stores the name before it tells the assetstore, which may fail: an S3 one answers
      // 500 (KeyError 's3Key') for every empty file. The rename is then done all the same.
      const now = await this.getFile(fileId);
      if (now.name === name) {
        this.log.debug({ fileId, status: err.status }, 'the rename was stored although Girder answered an error');
        return now;
      }
      return this.fileOf(await this.client.put(path, { name }, { idempotent: true }));
    }
  }

  async updateItem(itemId: string, change: { name?: string; folderId?: string }): Promise<ItemDoc> {
    const query = { name: change.name, folderId: change.folderId };
    return decodeItem(await this.client.put(`/item/${enc(itemId)}`, query, { idempotent: true }));
  }

  async updateFolder(folderId: string, change: { name?: string; parentId?: string }): Promise<FolderDoc> {
    // Girder ignores parentId unless parentType comes with it.
    const query: Query = { name: change.name };
    if (change.parentId !== undefined) Object.assign(query, { parentType: 'folder', parentId: change.parentId });
    return decodeFolder(await this.client.put(`/folder/${enc(folderId)}`, query, { idempotent: true }));
  }

  deleteFile(fileId: string): Promise<void> {
    return this.deleteOnce(`/file/${enc(fileId)}`);
  }

  deleteItem(itemId: string): Promise<void> {
    return this.deleteOnce(`/item/${enc(itemId)}`);
  }

  /**
   * DELETE /resource is synchronous and recursive (DELETE /folder needs a worker and 503s without).
   * Girder recurses in Python, so a chain of a few hundred nested folders overflows its stack (250
   * levels pass, 500 fail on Girder 5.0.21): such a tree is removed from its deepest folders up.
   */
  async deleteFolder(folderId: string): Promise<void> {
    try {
      await this.deleteFolderTree(folderId);
    } catch (err) {
      if (!isTooDeep(err)) throw err;
      this.log.info({ folderId }, 'Girder cannot remove this folder tree in one request (too deep): removing it folder by folder');
      const order: string[] = [];
      const stack = [folderId];
      for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
        order.push(id);
        for (const sub of await this.listFolders(id)) stack.push(sub.id);
      }
      // Every folder comes after the folders under it: each removal is one level deep.
      for (const id of order.reverse()) {
        await this.deleteFolderTree(id).catch((e: unknown) => {
          if (!isMissing(e, 'folder') || id === folderId) throw e;
        });
      }
    }
  }

  private async deleteFolderTree(folderId: string): Promise<void> {
    try {
      await this.deleteOnce('/resource', { resources: JSON.stringify({ folder: [folderId] }) });
    } catch (err) {
      // /resource words a missing folder differently ("No such folder"); say it like every other missing id.
      if (isMissing(err, 'folder')) {
        throw new GirderError(`Invalid folder id (${folderId}).`, 400, 'rest', 'id', { cause: err });
      }
      throw err;
    }
  }

  /** A null value deletes the key (Girder's default allowNull=false). */
  async setItemMeta(itemId: string, meta: Meta): Promise<ItemDoc> {
    return decodeItem(await this.client.put(`/item/${enc(itemId)}/metadata`, undefined, { json: meta, idempotent: true }));
  }

  async setFolderMeta(folderId: string, meta: Meta): Promise<FolderDoc> {
    return decodeFolder(await this.client.put(`/folder/${enc(folderId)}/metadata`, undefined, { json: meta, idempotent: true }));
  }

  /** Every page of a listing, sorted by _id so pages do not shift under a changing sort key. */
  /**
   * The file an upload made, with the SHA-512 Girder has for it. On S3 hashsum_download's
   * auto_compute hashes the file while answering the final chunk, but that answer leaves the hash
   * out: read the file once more, so an identical re-copy right after is known to be one.
   */
  private async uploaded(file: FileDoc, sent: string | undefined): Promise<FileDoc> {
    let doc = file;
    if (doc.sha512 === undefined && sent !== undefined) doc = await this.getFile(doc.id).catch(() => file);
    return this.staleHashes.afterUpload(doc, sent);
  }

  /** A file document as Girder sent it, less a SHA-512 known to be stale. */
  private fileOf(doc: unknown): FileDoc {
    return this.staleHashes.clean(decodeFile(doc));
  }

  private async listAll<T>(path: string, query: Query, decode: (doc: unknown) => T): Promise<T[]> {
    const all: T[] = [];
    for (let offset = 0; ;) {
      const res = await this.client.request('GET', path, {
        query: { ...query, limit: this.pageSize, offset, sort: '_id', sortdir: 1 },
      });
      const page = asArray(res.data, 'listing');
      for (const doc of page) all.push(decode(doc));
      offset += page.length;
      const total = totalCount(res.headers);
      if (page.length < this.pageSize || (total !== undefined && offset >= total)) return all;
    }
  }

  /** DELETE, retried on transient failures; "missing" after a retry means an earlier attempt did it. */
  private async deleteOnce(path: string, query?: Query): Promise<void> {
    let attempts = 0;
    try {
      await this.client.withRetries(true, undefined, async () => {
        attempts++;
        await this.client.request('DELETE', path, { query, idempotent: false });
      });
    } catch (err) {
      if (attempts > 1 && isMissing(err)) return;
      throw err;
    }
  }
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

function totalCount(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers['girder-total-count'];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  return raw === undefined || !Number.isFinite(value) ? undefined : value;
}
