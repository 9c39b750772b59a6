/** Girder documents as the rest of the program sees them: decoded, times in ms since the epoch. */

export type Meta = Record<string, unknown>;

/** Girder access levels (girder-api.md section 7). */
export const AccessLevel = { NONE: -1, READ: 0, WRITE: 1, ADMIN: 2 } as const;

export interface FolderDoc {
  readonly id: string;
  readonly name: string;
  /** Parent folder id, or the user/collection id at the top of a tree. */
  readonly parentId: string;
  readonly parentType: 'folder' | 'user' | 'collection';
  readonly created: number;
  readonly updated: number;
  readonly meta: Meta;
  /** The caller's access level on this folder. */
  readonly accessLevel: number;
}

export interface ItemDoc {
  readonly id: string;
  readonly name: string;
  readonly folderId: string;
  readonly created: number;
  readonly updated: number;
  readonly size: number;
  readonly meta: Meta;
}

export interface FileDoc {
  readonly id: string;
  readonly name: string;
  readonly itemId: string;
  readonly size: number;
  readonly created: number;
  /** Present only after a rename or MIME change. */
  readonly updated?: number;
  /** Present only where the hashsum_download plugin is loaded. */
  readonly sha512?: string;
  readonly mimeType: string;
}

export interface UserDoc {
  readonly id: string;
  readonly login: string;
  readonly admin: boolean;
}

/** Where an upload's bytes come from: a local file, read in chunks (never whole into memory). */
export interface UploadSource {
  readonly path: string;
  readonly size: number;
  /** SHA-512 of the bytes, when known: a replaced file whose Girder hash differs has a stale one (stale-hashes.ts). */
  readonly sha512?: string;
}

/** Hooks an upload reports through, so a caller can journal and show progress. */
export interface UploadHooks {
  /** The server assigned an upload id (persist it to resume after a crash). */
  onUploadId?(uploadId: string): void | Promise<void>;
  /** Bytes the server has confirmed so far. */
  onProgress?(sent: number, total: number): void;
  /** An upload id from an earlier attempt to resume, if any. */
  resumeUploadId?: string;
  signal?: AbortSignal;
}
