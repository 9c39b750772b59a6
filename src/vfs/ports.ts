/**
 * What the filesystem model needs from the write-back queue (vfs/writeback/) and the data reader
 * (vfs/cache/). Declared here, as the model sees them, so the daemon wires the real ones and unit
 * tests can wire the same classes against an in-memory store.
 */
import type { FileDoc } from '../girder/types.js';

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
}

export interface UploadResult {
  readonly path: string;
  readonly file: FileDoc;
  readonly itemId: string;
  readonly how: 'unchanged' | 'copied' | 'uploaded';
  readonly bytesSent: number;
}

export interface UploadStatus {
  readonly path: string;
  readonly size: number;
  readonly sent: number;
  readonly state: 'queued' | 'hashing' | 'uploading' | 'retrying';
  readonly error?: string;
}

export interface Uploads {
  /** Resolves once the job is durably journaled; `done` settles when Girder has the bytes. */
  submit(job: UploadJob): Promise<{ readonly done: Promise<UploadResult> }>;
  status(): UploadStatus[];
}

export interface RemoteFile {
  readonly id: string;
  readonly size: number;
  readonly versionKey: string;
}

export interface ReadSession {
  read(into: Buffer, length: number, position: number): Promise<number>;
  close(): void;
}

export interface DataReader {
  open(file: RemoteFile): ReadSession;
  invalidate(fileId: string): void;
}
