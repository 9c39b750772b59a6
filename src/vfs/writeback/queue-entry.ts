/** A job in the upload queue: its journal record, its callers, and where it stands in this run. */
import type { WaitCause } from './classify-failure.js';
import type { FileHash } from './sha512-file.js';
import type { JournalRecord, ResumeState, UploadJob, UploadResult } from './types.js';

export interface Waiter {
  resolve(result: UploadResult): void;
  reject(err: Error): void;
}

/** Why an upload is not being tried now, and when it is tried next. */
export interface Wait {
  readonly cause: WaitCause;
  readonly scope: 'server' | 'job';
  readonly reason: string;
  readonly since: number;
  tries: number;
  retryAt: number;
}

export interface Entry {
  /** The job as submitted (what pendingFor and the callbacks hand back), with the path of a rename (claim). */
  job: UploadJob;
  /** The journaled form, whose target may be narrowed to the file an earlier job of the path made. */
  readonly rec: JournalRecord;
  readonly promise: Promise<UploadResult>;
  /** This job's caller and those of queued jobs it superseded. */
  readonly waiters: Waiter[];
  /** Read from the journal at start. */
  readonly resumed: boolean;
  running: boolean;
  /** Hashed, and narrowed to an earlier job's file where there is one: done once. */
  prepared: boolean;
  narrowed: boolean;
  hash?: FileHash;
  phase: 'hashing' | 'uploading';
  sent: number;
  wait?: Wait;
  lastTriedAt: number;
  lastProgressLog: number;
  /** Its file was removed or replaced through the mount: drop it instead of trying again. */
  cancelled: boolean;
  /** Tries started in this run. */
  tries: number;
  /** The last failed try ended with Girder's own answer (see Attempt.lastTryAnswered). */
  lastTryAnswered: boolean;
  /** Not started before this time (holdMs after a fresh submit; 0 once hurried). */
  readyAt: number;
  /** Held by a claim (a rename in progress): not started until released. */
  claimed: boolean;
  /** Its bytes are being moved to lost+found: no longer an upload to show. */
  keeping: boolean;
}

export function newEntry(rec: JournalRecord, job: UploadJob, resumed: boolean, readyAt: number): Entry {
  const waiters: Waiter[] = [];
  const promise = handled(new Promise<UploadResult>((resolve, reject) => { waiters.push({ resolve, reject }); }));
  return {
    job, rec, promise, waiters, resumed, running: false, prepared: false, narrowed: false,
    phase: 'hashing', sent: 0, lastTriedAt: 0, lastProgressLog: 0, cancelled: false,
    tries: 0, lastTryAnswered: false, readyAt, claimed: false, keeping: false,
  };
}

/** Jobs of one key run in order and supersede each other: the file's own key, or its path. */
export function keyOf(job: UploadJob): string {
  return job.key ?? job.path;
}

export function isEmpty(resume: ResumeState): boolean {
  return Object.values(resume).every((v) => v === undefined);
}

/** Mark a promise as handled: a caller that ignores a write-back result must not crash the process. */
export function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
