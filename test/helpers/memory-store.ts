import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { GirderError } from '../../src/girder/girder-error.js';
import type { FileParent, FileRef, FolderContents, GirderStore, RangeStream } from '../../src/girder/store.js';
import { AccessLevel } from '../../src/girder/types.js';
import type { FileDoc, FolderDoc, ItemDoc, Meta, UploadHooks, UploadSource, UserDoc } from '../../src/girder/types.js';

/**
 * An in-memory Girder 5 with the quirks of girder-api.md: 24-hex ids, no 404s (400 `Invalid <model>
 * id (...)`), silent `name (1)` renames of clashing items, 400 on clashing folders, trimmed names,
 * `created` reset on replace, `updated` absent on files until a rename, sha512 only "with the
 * hashsum_download plugin". Test hooks: refuse, failNext, failEvery, delayNext, beforeNext, gate, interruptNextUpload, pauseNextUpload,
 * and the `calls` / `bytesUploaded` / `bytesRead` counters. `streamRange` hooks act when the stream
 * starts (its first read waits for them); `openStreams` holds the streams not yet closed.
 */

export type StoreMethod = keyof GirderStore;

interface FolderRec {
  id: string;
  name: string;
  parentId: string;
  parentType: 'folder' | 'user' | 'collection';
  created: number;
  updated: number;
  meta: Meta;
  accessLevel: number;
}

interface ItemRec {
  id: string;
  name: string;
  folderId: string;
  created: number;
  updated: number;
  meta: Meta;
}

interface FileRec {
  id: string;
  name: string;
  itemId: string;
  bytes: Buffer;
  sha512: string;
  created: number;
  updated?: number;
  mimeType: string;
}

type UploadTargetRec = { kind: 'new'; parent: FileParent; name: string } | { kind: 'replace'; fileId: string };

interface UploadRec {
  id: string;
  target: UploadTargetRec;
  size: number;
  chunks: Buffer[];
  received: number;
}

interface Gate {
  arrived: () => void;
  released: Promise<void>;
}

interface Refusal {
  error: GirderError | Error;
  methods: Set<StoreMethod> | undefined;
  hits: number;
}

/** Handle of a refusal set with `MemoryStore.refuse()`. */
export interface RefusalHandle {
  /** Calls refused so far. */
  readonly hits: number;
  lift(): void;
}

/** Handle of a gate set with `MemoryStore.gate()`. */
export interface GateHandle {
  /** Resolves when a call reached the gate (and is waiting). */
  readonly reached: Promise<void>;
  /** Let the waiting call (or the next one) through. */
  release(): void;
}

export interface MemoryStoreOptions {
  /** Whether the hashsum_download plugin is "loaded" (default true). */
  hashsum?: boolean;
  /** Bytes read from the source per upload chunk (default 1 MiB). */
  chunkSize?: number;
  /** Clock in ms (default Date.now). */
  now?: () => number;
  user?: UserDoc | null;
  /**
   * readRange and streamRange fail with 'stale' when the file is no longer the size they were
   * given, as RestStore does (default false: they return the bytes there are).
   */
  staleCheck?: boolean;
  /** Whether the listing plugin's route exists (folderContents answers); default false. */
  listingPlugin?: boolean;
}

const MiB = 1024 * 1024;

export class MemoryStore implements GirderStore {
  readonly rootId: string;
  /** Names of the GirderStore methods called, in order. */
  readonly calls: StoreMethod[] = [];
  /** Bytes received by uploads (uploadFile, replaceFile), resumed parts counted once. */
  bytesUploaded = 0;
  /** Bytes served by readRange and streamRange. */
  bytesRead = 0;
  /** Streams made by streamRange and not closed yet. */
  readonly openStreams = new Set<RangeStream>();
  hashsum: boolean;
  chunkSize: number;
  staleCheck: boolean;
  listingPlugin: boolean;
  user: UserDoc | null;
  /** While set, every call of every method throws it (after being logged in `calls`): the server away. */
  failEvery: GirderError | Error | undefined;

  private readonly now: () => number;
  private readonly folders = new Map<string, FolderRec>();
  private readonly items = new Map<string, ItemRec>();
  private readonly files = new Map<string, FileRec>();
  private readonly uploads = new Map<string, UploadRec>();
  private readonly failures = new Map<StoreMethod, Array<GirderError | Error>>();
  private readonly delays = new Map<StoreMethod, number[]>();
  private readonly befores = new Map<StoreMethod, Array<() => void | Promise<void>>>();
  private readonly gates = new Map<StoreMethod, Gate[]>();
  private readonly refusals: Refusal[] = [];
  private interrupt: { afterBytes: number; error: Error } | undefined;
  private pause: { afterBytes: number; gate: Gate } | undefined;
  private idCounter = 0;
  private readonly idPrefix = Math.floor(Date.now() / 1000).toString(16).padStart(8, '0').slice(-8);

  constructor(opts: MemoryStoreOptions = {}) {
    this.hashsum = opts.hashsum ?? true;
    this.chunkSize = opts.chunkSize ?? MiB;
    this.staleCheck = opts.staleCheck ?? false;
    this.listingPlugin = opts.listingPlugin ?? false;
    this.now = opts.now ?? Date.now;
    this.user = opts.user === undefined ? { id: this.newId(), login: 'memory', admin: true } : opts.user;
    const t = this.now();
    this.rootId = this.newId();
    this.folders.set(this.rootId, {
      id: this.rootId, name: 'root', parentId: this.user?.id ?? this.newId(), parentType: 'user',
      created: t, updated: t, meta: {}, accessLevel: AccessLevel.ADMIN,
    });
  }

  // ---- test hooks ----

  /**
   * Every call of `methods` (of any method when omitted) throws `error` (after being logged in
   * `calls`) until the handle's lift(): a server that refuses for a while (credentials, 5xx, full).
   */
  refuse(error: GirderError | Error, methods?: StoreMethod[]): RefusalHandle {
    const refusal: Refusal = { error, methods: methods === undefined ? undefined : new Set(methods), hits: 0 };
    this.refusals.push(refusal);
    return {
      get hits() { return refusal.hits; },
      lift: () => {
        const i = this.refusals.indexOf(refusal);
        if (i >= 0) this.refusals.splice(i, 1);
      },
    };
  }

  /** The next `times` calls of `method` throw `error` (after being logged in `calls`). */
  failNext(method: StoreMethod, error: GirderError | Error, times = 1): void {
    const list = this.failures.get(method) ?? [];
    for (let i = 0; i < times; i++) list.push(error);
    this.failures.set(method, list);
  }

  /** The next call of `method` waits `ms` before doing anything. */
  delayNext(method: StoreMethod, ms: number): void {
    const list = this.delays.get(method) ?? [];
    list.push(ms);
    this.delays.set(method, list);
  }

  /** Run `fn` at the start of the next call of `method` (to make a race happen). */
  beforeNext(method: StoreMethod, fn: () => void | Promise<void>): void {
    const list = this.befores.get(method) ?? [];
    list.push(fn);
    this.befores.set(method, list);
  }

  /** The next call of `method` blocks until `release()`. */
  gate(method: StoreMethod): GateHandle {
    let arrived!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((resolve) => { arrived = resolve; });
    const released = new Promise<void>((resolve) => { release = resolve; });
    const list = this.gates.get(method) ?? [];
    list.push({ arrived, released });
    this.gates.set(method, list);
    return { reached, release };
  }

  /** The next upload (uploadFile/replaceFile) throws `error` once it has received `afterBytes`; it stays resumable. */
  interruptNextUpload(afterBytes: number, error: Error): void {
    this.interrupt = { afterBytes, error };
  }

  /** The next upload (uploadFile/replaceFile) blocks once it has received `afterBytes`, until `release()`. */
  pauseNextUpload(afterBytes: number): GateHandle {
    let arrived!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((resolve) => { arrived = resolve; });
    const released = new Promise<void>((resolve) => { release = resolve; });
    this.pause = { afterBytes, gate: { arrived, released } };
    return { reached, release };
  }

  /** How many times `method` was called. */
  count(method: StoreMethod): number {
    return this.calls.filter((c) => c === method).length;
  }

  /** Uploads started and not finished (resumable ids). */
  pendingUploadIds(): string[] {
    return [...this.uploads.keys()];
  }

  // ---- seeding and inspection (synchronous, not logged in `calls`, no hooks) ----

  seedFolder(parentId: string, name: string): FolderDoc {
    const parent = this.folderRec(parentId);
    const t = this.now();
    const rec: FolderRec = {
      id: this.newId(), name, parentId, parentType: 'folder', created: t, updated: t, meta: {},
      accessLevel: parent.accessLevel,
    };
    this.folders.set(rec.id, rec);
    return this.folderDoc(rec);
  }

  seedItem(folderId: string, name: string): ItemDoc {
    this.folderRec(folderId);
    const t = this.now();
    const rec: ItemRec = { id: this.newId(), name, folderId, created: t, updated: t, meta: {} };
    this.items.set(rec.id, rec);
    return this.itemDoc(rec);
  }

  seedFileInItem(itemId: string, name: string, data: Buffer | string): FileDoc {
    this.itemRec(itemId);
    const bytes = Buffer.from(data);
    const rec: FileRec = {
      id: this.newId(), name, itemId, bytes, sha512: sha512(bytes), created: this.now(),
      mimeType: 'application/octet-stream',
    };
    this.files.set(rec.id, rec);
    return this.fileDoc(rec);
  }

  /** A single-file item `name` holding a file `name` (no clash check: seeding may make duplicates). */
  seedFile(folderId: string, name: string, data: Buffer | string): { item: ItemDoc; file: FileDoc } {
    const item = this.seedItem(folderId, name);
    const file = this.seedFileInItem(item.id, name, data);
    return { item: this.itemDoc(this.itemRec(item.id)), file };
  }

  /** The bytes of a file (throws like Girder when unknown). */
  /** New contents for a file, as another client's PUT /file/{id}/contents leaves it (`created` renewed). */
  replaceContents(fileId: string, data: Buffer | string): void {
    const rec = this.fileRec(fileId);
    rec.bytes = Buffer.from(data);
    rec.sha512 = sha512(rec.bytes);
    rec.created = this.now();
  }

  contentOf(fileId: string): Buffer {
    return Buffer.from(this.fileRec(fileId).bytes);
  }

  /** Set the caller's access level on one folder (children created later inherit it). */
  setAccess(folderId: string, level: number): void {
    this.folderRec(folderId).accessLevel = level;
  }

  hasFolder(id: string): boolean { return this.folders.has(id); }
  hasItem(id: string): boolean { return this.items.has(id); }
  hasFile(id: string): boolean { return this.files.has(id); }

  /** Every item in a folder, sorted by name (no hooks). */
  itemsIn(folderId: string): ItemDoc[] {
    return this.sortByLowerName([...this.items.values()].filter((i) => i.folderId === folderId)).map((i) => this.itemDoc(i));
  }

  /** Every file in an item, sorted by name (no hooks). */
  filesIn(itemId: string): FileDoc[] {
    return [...this.files.values()].filter((f) => f.itemId === itemId)
      .sort((a, b) => cmp(a.name, b.name)).map((f) => this.fileDoc(f));
  }

  // ---- GirderStore ----

  async me(): Promise<UserDoc | null> {
    await this.enter('me');
    return this.user === null ? null : { ...this.user };
  }

  async hasHashsum(): Promise<boolean> {
    await this.enter('hasHashsum');
    return this.hashsum;
  }

  async getFolder(id: string): Promise<FolderDoc> {
    await this.enter('getFolder');
    const rec = this.folderRec(id);
    this.requireLevel(rec, AccessLevel.READ);
    return this.folderDoc(rec);
  }

  async getItem(id: string): Promise<ItemDoc> {
    await this.enter('getItem');
    const rec = this.itemRec(id);
    this.requireLevel(this.folderRec(rec.folderId), AccessLevel.READ);
    return this.itemDoc(rec);
  }

  async getFile(id: string): Promise<FileDoc> {
    await this.enter('getFile');
    const rec = this.fileRec(id);
    this.requireFileLevel(rec, AccessLevel.READ);
    return this.fileDoc(rec);
  }

  async listFolders(parentId: string): Promise<FolderDoc[]> {
    await this.enter('listFolders');
    this.requireLevel(this.folderRec(parentId), AccessLevel.READ);
    const children = [...this.folders.values()]
      .filter((f) => f.parentId === parentId && f.parentType === 'folder' && f.accessLevel >= AccessLevel.READ);
    return this.sortByLowerName(children).map((f) => this.folderDoc(f));
  }

  async listItems(folderId: string): Promise<ItemDoc[]> {
    await this.enter('listItems');
    this.requireLevel(this.folderRec(folderId), AccessLevel.READ);
    return this.itemsIn(folderId);
  }

  async listFiles(itemId: string): Promise<FileDoc[]> {
    await this.enter('listFiles');
    const item = this.itemRec(itemId);
    this.requireLevel(this.folderRec(item.folderId), AccessLevel.READ);
    return this.filesIn(itemId);
  }

  async folderContents(folderId: string): Promise<FolderContents | undefined> {
    if (!this.listingPlugin) return undefined;
    await this.enter('folderContents');
    this.requireLevel(this.folderRec(folderId), AccessLevel.READ);
    const folders = [...this.folders.values()]
      .filter((f) => f.parentId === folderId && f.parentType === 'folder' && f.accessLevel >= AccessLevel.READ)
      .map((f) => this.folderDoc(f));
    return { folders, items: this.itemsIn(folderId).map((item) => ({ item, files: this.filesIn(item.id) })) };
  }

  async findItems(folderId: string, name: string): Promise<ItemDoc[]> {
    await this.enter('findItems');
    this.requireLevel(this.folderRec(folderId), AccessLevel.READ);
    return this.itemsIn(folderId).filter((i) => i.name === name);
  }

  async readRange(file: FileRef, offset: number, length: number, into: Buffer, intoOffset = 0, onProgress?: (filled: number) => void): Promise<number> {
    await this.enter('readRange');
    const rec = this.fileRec(file.id);
    this.requireFileLevel(rec, AccessLevel.READ);
    this.checkSize(rec, file);
    if (offset >= rec.bytes.length || length <= 0) return 0;
    const end = Math.min(rec.bytes.length, offset + length, offset + (into.length - intoOffset));
    const n = rec.bytes.copy(into, intoOffset, offset, end);
    this.bytesRead += n;
    onProgress?.(n);
    return n;
  }

  /** Reads are served in order, each when the reads before it are done. */
  streamRange(file: FileRef, offset: number, length: number): RangeStream {
    let pos = offset;
    let queuedEnd = offset;
    const end = Math.max(offset, Math.min(offset + length, file.size));
    let closed = false;
    let chain: Promise<unknown> = this.enter('streamRange');
    chain.catch(() => undefined); // a stream nobody reads from fails quietly
    const stream: RangeStream = {
      read: (into: Buffer): Promise<number> => {
        if (closed) return Promise.reject(new GirderError('the range stream was closed', 0, 'aborted'));
        const len = Math.max(0, Math.min(into.length, end - queuedEnd));
        queuedEnd += len;
        const served = chain.then(() => {
          if (closed) throw new GirderError('the range stream was closed', 0, 'aborted');
          if (len === 0) return 0;
          const rec = this.fileRec(file.id);
          this.requireFileLevel(rec, AccessLevel.READ);
          this.checkSize(rec, file);
          const n = pos < rec.bytes.length ? rec.bytes.copy(into, 0, pos, Math.min(pos + len, rec.bytes.length)) : 0;
          pos += n;
          this.bytesRead += n;
          return n;
        });
        chain = served;
        return served;
      },
      close: () => {
        closed = true;
        this.openStreams.delete(stream);
      },
    };
    this.openStreams.add(stream);
    return stream;
  }

  async createFolder(parentId: string, name: string): Promise<FolderDoc> {
    await this.enter('createFolder');
    const parent = this.folderRec(parentId);
    this.requireLevel(parent, AccessLevel.WRITE);
    const clean = cleanName(name, 'Folder');
    this.checkFolderNameFree(parentId, clean, undefined);
    const t = this.now();
    const rec: FolderRec = {
      id: this.newId(), name: clean, parentId, parentType: 'folder', created: t, updated: t, meta: {},
      accessLevel: parent.accessLevel,
    };
    this.folders.set(rec.id, rec);
    return this.folderDoc(rec);
  }

  async createItem(folderId: string, name: string, meta?: Meta): Promise<ItemDoc> {
    await this.enter('createItem');
    this.requireLevel(this.folderRec(folderId), AccessLevel.WRITE);
    const clean = this.freeItemName(folderId, cleanName(name, 'Item'), undefined);
    const t = this.now();
    const rec: ItemRec = { id: this.newId(), name: clean, folderId, created: t, updated: t, meta: applyMeta({}, meta ?? {}) };
    this.items.set(rec.id, rec);
    return this.itemDoc(rec);
  }

  async createFile(parent: FileParent, name: string, source: UploadSource, hooks?: UploadHooks): Promise<FileDoc> {
    await this.enter('createFile');
    const folderId = 'folderId' in parent ? parent.folderId : this.itemRec(parent.itemId).folderId;
    this.requireLevel(this.folderRec(folderId), AccessLevel.WRITE);
    const clean = cleanName(name, 'File');
    const bytes = await this.receive({ kind: 'new', parent, name: clean }, source, hooks);
    let itemId: string;
    if ('itemId' in parent) {
      itemId = parent.itemId;
      this.itemRec(itemId); // the item may have gone while uploading
    } else {
      // As Girder: the item is made at the end, named after the file, `name (1)` on a clash.
      this.folderRec(folderId);
      const t = this.now();
      const item: ItemRec = { id: this.newId(), name: this.freeItemName(folderId, clean, undefined), folderId, created: t, updated: t, meta: {} };
      this.items.set(item.id, item);
      itemId = item.id;
    }
    const rec: FileRec = {
      id: this.newId(), name: clean, itemId, bytes, sha512: sha512(bytes), created: this.now(),
      mimeType: 'application/octet-stream',
    };
    this.files.set(rec.id, rec);
    return this.fileDoc(rec);
  }

  async replaceFile(fileId: string, source: UploadSource, hooks?: UploadHooks): Promise<FileDoc> {
    await this.enter('replaceFile');
    this.requireFileLevel(this.fileRec(fileId), AccessLevel.WRITE);
    const bytes = await this.receive({ kind: 'replace', fileId }, source, hooks);
    const rec = this.fileRec(fileId);
    rec.bytes = bytes;
    rec.sha512 = sha512(bytes);
    rec.created = this.now(); // Girder resets `created` on replace and leaves `updated` alone
    return this.fileDoc(rec);
  }

  async filesBySha512(hash: string): Promise<FileDoc[]> {
    await this.enter('filesBySha512');
    if (!this.hashsum) return [];
    return [...this.files.values()]
      .filter((f) => f.sha512 === hash && this.fileLevel(f) >= AccessLevel.READ)
      .map((f) => this.fileDoc(f));
  }

  async copyFile(fileId: string, itemId: string): Promise<FileDoc> {
    await this.enter('copyFile');
    const src = this.fileRec(fileId);
    this.requireFileLevel(src, AccessLevel.READ);
    const item = this.itemRec(itemId);
    this.requireLevel(this.folderRec(item.folderId), AccessLevel.WRITE);
    const rec: FileRec = { ...src, id: this.newId(), itemId }; // shares the bytes, keeps name and times
    this.files.set(rec.id, rec);
    return this.fileDoc(rec);
  }

  async renameFile(fileId: string, name: string): Promise<FileDoc> {
    await this.enter('renameFile');
    const rec = this.fileRec(fileId);
    this.requireFileLevel(rec, AccessLevel.WRITE);
    rec.name = cleanName(name, 'File');
    rec.updated = this.now();
    return this.fileDoc(rec);
  }

  async updateItem(itemId: string, change: { name?: string; folderId?: string }): Promise<ItemDoc> {
    await this.enter('updateItem');
    const rec = this.itemRec(itemId);
    this.requireLevel(this.folderRec(rec.folderId), AccessLevel.WRITE);
    if (change.folderId !== undefined) this.requireLevel(this.folderRec(change.folderId), AccessLevel.WRITE);
    const name = change.name === undefined ? undefined : cleanName(change.name, 'Item');
    if (change.folderId !== undefined) rec.folderId = change.folderId; // moves never check names
    if (name !== undefined && name !== rec.name) rec.name = this.freeItemName(rec.folderId, name, rec.id);
    rec.updated = this.now();
    return this.itemDoc(rec);
  }

  async updateFolder(folderId: string, change: { name?: string; parentId?: string }): Promise<FolderDoc> {
    await this.enter('updateFolder');
    const rec = this.folderRec(folderId);
    this.requireLevel(rec, AccessLevel.WRITE);
    if (change.parentId !== undefined && change.parentId !== rec.parentId) {
      const parent = this.folderRec(change.parentId);
      this.requireLevel(parent, AccessLevel.WRITE);
      for (let f: FolderRec | undefined = parent; f; f = f.parentType === 'folder' ? this.folders.get(f.parentId) : undefined) {
        if (f.id === rec.id) throw new GirderError('You may not move a folder underneath itself.', 400, 'validation');
      }
    }
    if (change.name !== undefined) {
      const name = cleanName(change.name, 'Folder');
      if (name !== rec.name) this.checkFolderNameFree(change.parentId ?? rec.parentId, name, rec.id);
      rec.name = name;
    }
    if (change.parentId !== undefined) {
      rec.parentId = change.parentId;
      rec.parentType = 'folder';
    }
    rec.updated = this.now();
    return this.folderDoc(rec);
  }

  async deleteFile(fileId: string): Promise<void> {
    await this.enter('deleteFile');
    const rec = this.fileRec(fileId);
    this.requireFileLevel(rec, AccessLevel.WRITE);
    this.files.delete(fileId);
    this.dropUploadsOf((t) => t.kind === 'replace' && t.fileId === fileId);
  }

  async deleteItem(itemId: string): Promise<void> {
    await this.enter('deleteItem');
    const rec = this.itemRec(itemId);
    this.requireLevel(this.folderRec(rec.folderId), AccessLevel.WRITE);
    this.removeItem(itemId);
  }

  async deleteFolder(folderId: string): Promise<void> {
    await this.enter('deleteFolder');
    const rec = this.folderRec(folderId);
    this.requireLevel(rec, AccessLevel.ADMIN);
    this.removeFolder(folderId);
  }

  async setItemMeta(itemId: string, meta: Meta): Promise<ItemDoc> {
    await this.enter('setItemMeta');
    const rec = this.itemRec(itemId);
    this.requireLevel(this.folderRec(rec.folderId), AccessLevel.WRITE);
    rec.meta = applyMeta(rec.meta, meta);
    rec.updated = this.now();
    return this.itemDoc(rec);
  }

  async setFolderMeta(folderId: string, meta: Meta): Promise<FolderDoc> {
    await this.enter('setFolderMeta');
    const rec = this.folderRec(folderId);
    this.requireLevel(rec, AccessLevel.WRITE);
    rec.meta = applyMeta(rec.meta, meta);
    rec.updated = this.now();
    return this.folderDoc(rec);
  }

  // ---- internals ----

  private checkSize(rec: FileRec, file: FileRef): void {
    if (this.staleCheck && rec.bytes.length !== file.size) {
      throw new GirderError(`file ${file.id} is now ${rec.bytes.length} bytes, not ${file.size}`, 206, 'stale');
    }
  }

  private async enter(method: StoreMethod): Promise<void> {
    this.calls.push(method);
    const delay = this.delays.get(method)?.shift();
    if (delay !== undefined) await new Promise((resolve) => setTimeout(resolve, delay));
    const gate = this.gates.get(method)?.shift();
    if (gate) {
      gate.arrived();
      await gate.released;
    }
    const before = this.befores.get(method)?.shift();
    if (before) await before();
    const failure = this.failures.get(method)?.shift();
    if (failure) throw failure;
    const refusal = this.refusals.find((r) => r.methods === undefined || r.methods.has(method));
    if (refusal) {
      refusal.hits++;
      throw refusal.error;
    }
    if (this.failEvery !== undefined) throw this.failEvery;
  }

  /** Read the source from disk in chunks into an upload (resumed when `hooks.resumeUploadId` is known). */
  private async receive(target: UploadTargetRec, source: UploadSource, hooks: UploadHooks | undefined): Promise<Buffer> {
    if (source.size === 0) return Buffer.alloc(0); // Girder answers a file document at once
    let up = hooks?.resumeUploadId === undefined ? undefined : this.uploads.get(hooks.resumeUploadId);
    if (up && (up.size !== source.size || !sameTarget(up.target, target))) up = undefined;
    if (!up) {
      up = { id: this.newId(), target, size: source.size, chunks: [], received: 0 };
      this.uploads.set(up.id, up);
      await hooks?.onUploadId?.(up.id);
    }
    const fh = await fsp.open(source.path, 'r');
    try {
      while (up.received < up.size) {
        if (hooks?.signal?.aborted) throw hooks.signal.reason instanceof Error ? hooks.signal.reason : new Error('aborted');
        if (!this.uploads.has(up.id)) throw new GirderError(`Invalid upload id (${up.id}).`, 400, 'rest');
        const want = Math.min(this.chunkSize, up.size - up.received);
        const buf = Buffer.alloc(want);
        const { bytesRead } = await fh.read(buf, 0, want, up.received);
        if (bytesRead === 0) throw new Error(`upload source ${source.path} ended at ${up.received} of ${up.size} bytes`);
        up.chunks.push(buf.subarray(0, bytesRead));
        up.received += bytesRead;
        this.bytesUploaded += bytesRead;
        hooks?.onProgress?.(up.received, up.size);
        const pause = this.pause;
        if (pause && up.received >= pause.afterBytes && up.received < up.size) {
          this.pause = undefined;
          pause.gate.arrived();
          await pause.gate.released;
        }
        const cut = this.interrupt;
        if (cut && up.received >= cut.afterBytes && up.received < up.size) {
          this.interrupt = undefined;
          throw cut.error;
        }
      }
    } finally {
      await fh.close();
    }
    this.uploads.delete(up.id);
    return Buffer.concat(up.chunks);
  }

  private dropUploadsOf(match: (t: UploadTargetRec) => boolean): void {
    for (const [id, up] of this.uploads) if (match(up.target)) this.uploads.delete(id);
  }

  private removeItem(itemId: string): void {
    for (const f of [...this.files.values()]) if (f.itemId === itemId) this.files.delete(f.id);
    this.items.delete(itemId);
    this.dropUploadsOf((t) => (t.kind === 'new' && 'itemId' in t.parent && t.parent.itemId === itemId) || (t.kind === 'replace' && !this.files.has(t.fileId)));
  }

  private removeFolder(folderId: string): void {
    for (const f of [...this.folders.values()]) if (f.parentType === 'folder' && f.parentId === folderId) this.removeFolder(f.id);
    for (const i of [...this.items.values()]) if (i.folderId === folderId) this.removeItem(i.id);
    this.folders.delete(folderId);
  }

  private checkFolderNameFree(parentId: string, name: string, selfId: string | undefined): void {
    for (const f of this.folders.values()) {
      if (f.parentType === 'folder' && f.parentId === parentId && f.name === name && f.id !== selfId) {
        throw new GirderError('A folder with that name already exists here.', 400, 'validation', 'name');
      }
    }
    for (const i of this.items.values()) {
      if (i.folderId === parentId && i.name === name) {
        throw new GirderError('An item with that name already exists here.', 400, 'validation', 'name');
      }
    }
  }

  /** Girder's item collision rule: `name`, else `name (1)`, `name (2)`, ... */
  private freeItemName(folderId: string, name: string, selfId: string | undefined): string {
    const taken = (n: string): boolean =>
      [...this.items.values()].some((i) => i.folderId === folderId && i.name === n && i.id !== selfId) ||
      [...this.folders.values()].some((f) => f.parentType === 'folder' && f.parentId === folderId && f.name === n);
    let candidate = name;
    for (let n = 1; taken(candidate); n++) candidate = `${name} (${n})`;
    return candidate;
  }

  private folderRec(id: string): FolderRec {
    checkObjectId(id);
    const rec = this.folders.get(id);
    if (!rec) throw new GirderError(`Invalid folder id (${id}).`, 400, 'rest');
    return rec;
  }

  private itemRec(id: string): ItemRec {
    checkObjectId(id);
    const rec = this.items.get(id);
    if (!rec) throw new GirderError(`Invalid item id (${id}).`, 400, 'rest');
    return rec;
  }

  private fileRec(id: string): FileRec {
    checkObjectId(id);
    const rec = this.files.get(id);
    if (!rec) throw new GirderError(`Invalid file id (${id}).`, 400, 'rest');
    return rec;
  }

  private fileLevel(f: FileRec): number {
    const item = this.items.get(f.itemId);
    const folder = item && this.folders.get(item.folderId);
    return folder ? folder.accessLevel : AccessLevel.NONE;
  }

  private requireFileLevel(f: FileRec, level: number): void {
    this.requireLevel(this.folderRec(this.itemRec(f.itemId).folderId), level);
  }

  private requireLevel(folder: FolderRec, level: number): void {
    if (folder.accessLevel >= level) return;
    const what = level >= AccessLevel.ADMIN ? 'Admin' : level >= AccessLevel.WRITE ? 'Write' : 'Read';
    const status = this.user === null ? 401 : 403;
    throw new GirderError(`${what} access denied for folder ${folder.id} (user ${this.user?.login ?? 'None'}).`, status, 'access');
  }

  private sortByLowerName<T extends { name: string }>(list: T[]): T[] {
    return list.sort((a, b) => cmp(a.name.toLowerCase(), b.name.toLowerCase()) || cmp(a.name, b.name));
  }

  private folderDoc(r: FolderRec): FolderDoc {
    return {
      id: r.id, name: r.name, parentId: r.parentId, parentType: r.parentType, created: r.created,
      updated: r.updated, meta: structuredClone(r.meta), accessLevel: r.accessLevel,
    };
  }

  private itemDoc(r: ItemRec): ItemDoc {
    let size = 0;
    for (const f of this.files.values()) if (f.itemId === r.id) size += f.bytes.length;
    return { id: r.id, name: r.name, folderId: r.folderId, created: r.created, updated: r.updated, size, meta: structuredClone(r.meta) };
  }

  private fileDoc(r: FileRec): FileDoc {
    return {
      id: r.id, name: r.name, itemId: r.itemId, size: r.bytes.length, created: r.created,
      ...(r.updated === undefined ? {} : { updated: r.updated }),
      ...(this.hashsum ? { sha512: r.sha512 } : {}),
      mimeType: r.mimeType,
    };
  }

  private newId(): string {
    this.idCounter++;
    return this.idPrefix + this.idCounter.toString(16).padStart(16, '0');
  }
}

function sha512(bytes: Buffer): string {
  return createHash('sha512').update(bytes).digest('hex');
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sameTarget(a: UploadTargetRec, b: UploadTargetRec): boolean {
  if (a.kind === 'new' && b.kind === 'new') return parentKey(a.parent) === parentKey(b.parent) && a.name === b.name;
  if (a.kind === 'replace' && b.kind === 'replace') return a.fileId === b.fileId;
  return false;
}

function parentKey(parent: FileParent): string {
  return 'folderId' in parent ? `folder:${parent.folderId}` : `item:${parent.itemId}`;
}

function checkObjectId(id: string): void {
  if (!/^[0-9a-f]{24}$/.test(id)) throw new GirderError(`Invalid ObjectId: ${id}`, 400, 'validation', 'id');
}

function cleanName(name: string, model: 'Folder' | 'Item' | 'File'): string {
  const clean = name.trim();
  if (clean === '') throw new GirderError(`${model} name must not be empty.`, 400, 'validation', 'name');
  return clean;
}

function applyMeta(current: Meta, change: Meta): Meta {
  const next: Meta = { ...current };
  for (const [key, value] of Object.entries(change)) {
    if (key.includes('.') || key.startsWith('$')) {
      throw new GirderError(`Invalid key ${key}: keys must not contain the "." character and must not start with "$".`, 400, 'validation');
    }
    if (value === null) delete next[key];
    else next[key] = structuredClone(value);
  }
  return next;
}
