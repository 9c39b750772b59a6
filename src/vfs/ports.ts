/**
 * What the filesystem model needs from the write-back queue (vfs/writeback/) and the data reader
 * (vfs/cache/). Declared here, as the model sees them, so the daemon wires the real ones and unit
 * tests can wire the same classes against an in-memory store.
 */
import type { FileDoc, ItemDoc } from '../girder/types.js';

export type UploadTarget =
  | { kind: 'file'; fileId: string; remoteSha512?: string; fallback?: { folderId: string; name: string } | { itemId: string; name: string } }
  | { kind: 'item'; itemId: string; name: string }
  | { kind: 'folder'; folderId: string; name: string };

export interface UploadJob {
  readonly path: string;
  readonly target: UploadTarget;
  readonly tempPath: string;
  readonly size: number;
  /** SHA-512 of the temp file, when it was computed as the bytes were written. */
  readonly sha512?: string;
  /**
   * Names the file across renames of it or its directories: jobs of one key run in order, so the
   * last close wins even when the path changed between two uploads (default: the path).
   */
  readonly key?: string;
  /**
   * The mount saw no entry of this name in a fresh listing of its directory when the file was
   * closed: a first try may create it in one request without looking first.
   */
  readonly nameFree?: boolean;
  /**
   * The version (versionKeyOf) of the Girder file the local copy started from, when no earlier
   * upload of it was in flight: finding another when it replaces the file, the upload logs that a
   * change made elsewhere meanwhile is replaced (the local close wins).
   */
  readonly openedVersion?: string;
}

export interface UploadResult {
  readonly path: string;
  readonly file: FileDoc;
  readonly itemId: string;
  /** The file's item, when known without asking (`exact`: Girder's own document, else made up here). */
  readonly item?: { readonly doc: ItemDoc; readonly exact: boolean };
  readonly how: 'unchanged' | 'copied' | 'uploaded';
  readonly bytesSent: number;
}

export interface UploadStatus {
  readonly path: string;
  readonly size: number;
  readonly sent: number;
  /** 'waiting': a try failed with something that can go away; it is tried again in `retryInS`. */
  readonly state: 'queued' | 'hashing' | 'uploading' | 'waiting';
  /** Why it waits, in words. */
  readonly reason?: string;
  readonly retryInS?: number;
  /** Read from the journal at start (closed before a restart). */
  readonly resumed?: boolean;
}

export interface Uploads {
  /**
   * Resolves once the job is durably journaled; `done` settles when Girder has the bytes. It
   * rejects only when the job leaves the queue without reaching Girder: its target was deleted
   * there (the bytes went to lost+found), it was cancelled, or the queue closed (it stays journaled).
   */
  submit(job: UploadJob): Promise<{ readonly done: Promise<UploadResult> }>;
  status(): UploadStatus[];
  /** Jobs read from the journal at start and not finished yet, with their outcome. */
  resumed(): ReadonlyArray<{ readonly job: UploadJob; readonly done: Promise<UploadResult> }>;
  /** Why the uploads of a file (UploadJob.key) wait, or undefined when none waits. */
  waitingFor(key: string): string | undefined;
  /** Resolves at the next change of any upload's state. */
  nextChange(): Promise<void>;
  /** Drop a file's uploads that are not running (it was removed or replaced); resolves once none is left. */
  cancel(key: string): Promise<void>;
  /**
   * Hold a file's queued uploads while none has started, so a rename can give them the new path and
   * target (nothing then happens on Girder for the rename); undefined when that is too late.
   */
  claim(key: string): UploadClaim | undefined;
  /** Start a file's uploads now, without the short hold after a close (someone waits: fsync). */
  hurry(key: string): void;
}

/** A removal on Girder of an entry already gone from the mount (an unlink). */
export interface DeleteJob {
  /** The entry's mount path when it was removed. */
  readonly path: string;
  /** A folder's removal is recursive: it takes the removals still queued under it. */
  readonly kind: 'item' | 'file' | 'folder';
  readonly id: string;
  /** The listing the entry was removed from (Tree's key), to keep it out of later fetches. */
  readonly dirKey: string;
}

/** A removal taken out of the queue (Removals.takeUnder). */
export interface TakenRemoval {
  readonly job: DeleteJob;
  done(): Promise<void>;
  restore(): void;
}


/** Removals on Girder that follow an unlink in the background (writeback/delete-queue.ts). */
export interface Removals {
  /** Journal the removal (durably) and queue it. */
  enqueue(job: DeleteJob): Promise<void>;
  /** Take the queued removals under a directory out of the queue, for its recursive delete. */
  takeUnder(dirPath: string): Promise<TakenRemoval[]>;
  /** Resolves once no removal of `path` (or under it) is queued. */
  settled(path: string): Promise<void>;

}

export interface UploadClaim {
  retarget(path: string, target: UploadTarget, nameFree: boolean): Promise<void>;
  release(): void;
}

/** What the data-read path needs to know of a remote file. */
export interface RemoteFile {
  readonly id: string;
  readonly size: number;
  /**
   * Identifies one content of the file (see `versionKeyOf`): blocks cached under another key of
   * the same file id are never served, and are dropped when a new key shows up.
   */
  readonly versionKey: string;
}

/** An open file's reads: keeps the file's cached blocks from being evicted until close(). */
export interface ReadSession {
  /** Reads up to `length` bytes at `position` into `into` (from offset 0); fewer only at end of file. */
  read(into: Buffer, length: number, position: number): Promise<number>;
  /**
   * The same read done at once, when every byte it needs is in memory: the bytes copied; or
   * undefined when it would have to wait (then call `read`; no read-ahead state has changed).
   */
  readNow(into: Buffer, length: number, position: number): number | undefined;
  close(): void;
}

export interface DataReader {
  open(file: RemoteFile): ReadSession;
  invalidate(fileId: string): void;
  /** The file is gone from Girder (removed or replaced here): its cached bytes go once no session reads them. */
  removed(fileId: string): void;
  /** Whether bytes of some version of the file may be cached (and could be served as that version). */
  holds(fileId: string): boolean;
  /** Files no larger than this are fetched whole by their first read, and may be fetched ahead. */
  readonly wholeFileBytes: number;
  /**
   * Fetch a file of at most wholeFileBytes whole into the cache before anyone reads it (a walker's
   * next files); nothing when its bytes are there or on their way. Settles once they have landed
   * or their fetch failed (which caches nothing: a reader then fetches them itself).
   */
  prefetch(file: RemoteFile): Promise<void>;
  /** Cache the bytes of a small file just uploaded from here, as the version Girder now has. */
  seed(file: RemoteFile, read: (into: Buffer, length: number, position: number) => Promise<number>): Promise<void>;
}
