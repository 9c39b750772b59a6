/** The queue's vocabulary. The shapes the filesystem model sees live in ../ports.ts; a job may also carry item metadata. */
import type { Meta } from '../../girder/types.js';
import type { UploadJob as PortUploadJob } from '../ports.js';

export type { UploadResult, UploadStatus, UploadTarget } from '../ports.js';

export interface UploadJob extends PortUploadJob {
  /** Metadata set on the file's item once Girder holds the bytes (null deletes a key). */
  readonly meta?: Meta;
}

/** What a job remembers across retries and restarts (journaled with it). */
export interface ResumeState {
  /** Upload id from Girder, and the operation it belongs to (`replace:<fileId>` or `new:<itemId>:<name>`). */
  uploadId?: string;
  uploadFor?: string;
  /** The item this job created for a 'folder' target. */
  itemId?: string;
  /** About to create that item: an empty item of the name found after a crash is ours. */
  creatingItem?: boolean;
  /** A server-side copy made and maybe not yet renamed. */
  copiedFileId?: string;
  /** `name (1)` items made by a lost race, still to delete. */
  strayItemIds?: string[];
}

/** One journal file: a job handed to the queue and not yet finished. */
export interface JournalRecord {
  readonly v: 1;
  readonly id: string;
  /** Submission order: jobs of one path run in this order, also after a restart. */
  readonly seq: number;
  readonly submittedAt: number;
  job: UploadJob;
  resume: ResumeState;
}

/** The queue closed before the job finished; its journal record stays, and the next start() resumes it. */
export class UploadQueueClosedError extends Error {
  override readonly name = 'UploadQueueClosedError';
  constructor(path: string) {
    super(`upload of ${path} interrupted: the queue closed (it resumes at the next start)`);
  }
}

/** An item directory or folder of the file's name is in the way on the server: the job waits until the user renames or removes it. */
export class NameInTheWayError extends Error {
  override readonly name = 'NameInTheWayError';
}

/** The job can never reach Girder (its target was deleted there): its bytes were moved to `keptAt`. */
export class UploadKeptError extends Error {
  override readonly name = 'UploadKeptError';
  constructor(path: string, readonly reason: string, readonly keptAt: string) {
    super(`${path} cannot be uploaded (${reason}); its bytes are kept at ${keptAt}`);
  }
}

/** The job was dropped because its file was removed or replaced through the mount before it reached Girder. */
export class UploadCancelledError extends Error {
  override readonly name = 'UploadCancelledError';
  constructor(path: string) {
    super(`upload of ${path} dropped: the file was removed or replaced`);
  }
}
