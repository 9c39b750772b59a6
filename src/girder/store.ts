import type { FileDoc, FolderDoc, ItemDoc, Meta, UploadHooks, UploadSource, UserDoc } from './types.js';

/**
 * Everything the vfs layer asks of Girder. `RestStore` implements it over HTTP; unit tests use an
 * in-memory implementation (test/helpers/memory-store.ts). Methods throw `GirderError`.
 */
export interface GirderStore {
  /** The logged-in user (null when anonymous). */
  me(): Promise<UserDoc | null>;
  /** Whether the server can find files by SHA-512 (hashsum_download plugin). */
  hasHashsum(): Promise<boolean>;

  getFolder(id: string): Promise<FolderDoc>;
  getItem(id: string): Promise<ItemDoc>;
  /** `signal` ends the wait (and its retries) early: for a question that is only worth a quick answer. */
  getFile(id: string, options?: { signal?: AbortSignal }): Promise<FileDoc>;
  listFolders(parentId: string): Promise<FolderDoc[]>;
  listItems(folderId: string): Promise<ItemDoc[]>;
  listFiles(itemId: string): Promise<FileDoc[]>;
  /** Items of a folder with this exact name (Girder's `name` filter). */
  findItems(folderId: string, name: string): Promise<ItemDoc[]>;
  /**
   * A folder's sub-folders, and its items each with all its files, from the optional listing plugin
   * (one request per page instead of one per item); undefined when the server has no such route.
   */
  folderContents(folderId: string): Promise<FolderContents | undefined>;

  /**
   * Read `length` bytes at `offset` of a file into `into` (at `intoOffset`). Resolves with the
   * number of bytes read: fewer than asked only at end of file. `onProgress` hears how many bytes
   * from the start of the range have landed so far, so callers can use them before the end.
   */
  readRange(file: FileRef, offset: number, length: number, into: Buffer, intoOffset?: number, onProgress?: (filled: number) => void): Promise<number>;
  /**
   * Bytes [offset, offset+length) of a file (clamped to its size) as one stream that the caller
   * pulls with `read`: bytes nobody asked for yet are not fetched beyond a few buffers. For long
   * sequential reads: far fewer requests than `readRange` calls. Errors as for `readRange`.
   */
  streamRange(file: FileRef, offset: number, length: number): RangeStream;

  createFolder(parentId: string, name: string): Promise<FolderDoc>;
  /** Creates an item; Girder may rename it `name (1)` on a clash: read the returned name. */
  createItem(folderId: string, name: string, meta?: Meta): Promise<ItemDoc>;
  /**
   * A new file in an item, or in a folder, where Girder makes an item of the file's name for it (a
   * clash renames that item `name (1)`: look first when unsure). Under 5 MiB, one request: the
   * bytes are the body of POST /file. A failure may leave the file made: check before trying again.
   */
  createFile(parent: FileParent, name: string, source: UploadSource, hooks?: UploadHooks): Promise<FileDoc>;
  /** Replace a file's contents; its id survives. */
  replaceFile(fileId: string, source: UploadSource, hooks?: UploadHooks): Promise<FileDoc>;
  /** Readable files whose content has this SHA-512 (empty when none or without the plugin). */
  filesBySha512(sha512: string): Promise<FileDoc[]>;
  /** Server-side copy of a file into an item (no bytes sent). */
  copyFile(fileId: string, itemId: string): Promise<FileDoc>;

  renameFile(fileId: string, name: string): Promise<FileDoc>;
  updateItem(itemId: string, change: { name?: string; folderId?: string }): Promise<ItemDoc>;
  updateFolder(folderId: string, change: { name?: string; parentId?: string }): Promise<FolderDoc>;
  deleteFile(fileId: string): Promise<void>;
  deleteItem(itemId: string): Promise<void>;
  /** Synchronous, recursive delete. */
  deleteFolder(folderId: string): Promise<void>;

  /** Set (value) or delete (null) metadata keys. */
  setItemMeta(itemId: string, meta: Meta): Promise<ItemDoc>;
  setFolderMeta(folderId: string, meta: Meta): Promise<FolderDoc>;
}

export type FileParent = { readonly folderId: string } | { readonly itemId: string };

export interface FolderContents {
  readonly folders: readonly FolderDoc[];
  readonly items: ReadonlyArray<{ readonly item: ItemDoc; readonly files: readonly FileDoc[] }>;
}

/** A pulled read of one range of a file (see GirderStore.streamRange). */
export interface RangeStream {
  /**
   * Fill `into` with the next bytes of the range. Reads queue and are filled in the order they
   * were made; each resolves with its byte count, less than `into.length` only at the end of the
   * range (0 after it). Rejects with the GirderError that ended the stream ('stale' when the file
   * changed), or once the stream is closed.
   */
  read(into: Buffer): Promise<number>;
  /** Stop: drop the connections; queued reads reject. */
  close(): void;
}

/** What a range read needs to know of a file: its id and size (reads never pass EOF). */
export interface FileRef {
  readonly id: string;
  readonly size: number;
  /**
   * An opaque key of the file's content version, when the caller knows it: where Girder redirects
   * the download of one version (a presigned S3 URL) is then reused for later reads of it.
   */
  readonly version?: string;
}
