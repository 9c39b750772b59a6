import { dirname, join } from 'node:path';
import type { GirderStore } from '../../girder/store.js';
import type { Logger } from '../../log.js';
import type { UploadClaim } from '../ports.js';
import type { WaitCause } from './classify-failure.js';
import { FileClaims } from './file-claims.js';
import { JobEndings } from './job-endings.js';
import { JobList } from './job-list.js';
import { JobRecords } from './job-records.js';
import { Journal } from './journal.js';
import { LostAndFound, type KeptUpload } from './lost-found.js';
import { handled, keyOf, newEntry, type Entry } from './queue-entry.js';
import { Scheduler } from './scheduler.js';
import {
  UploadQueueClosedError, type JournalRecord, type UploadJob, type UploadKeptError, type UploadResult, type UploadStatus,
} from './types.js';
import { Uploader } from './uploader.js';
import { UploadTry } from './upload-try.js';
import { Waits } from './waits.js';

/** How long close() waits for running uploads to notice the abort. */
const CLOSE_WAIT_MS = 10_000;

export interface UploadQueueOptions {
  store: GirderStore;
  /** Where the journal lives (created if missing). */
  journalDir: string;
  /** The cache directory: log lines name it, and uploads that can never succeed go to its `lost+found/` (default: the journal's parent). */
  cacheDir?: string;
  logger: Logger;
  /** Jobs uploading at once (default 8: small files are limited by round trips, not bandwidth). */
  concurrency?: number;
  /**
   * How long a newly closed file waits before its upload starts (default 500 ms), unless hurried
   * (fsync): programs write a temp name and rename it at once (git, rsync, editors), and a rename of
   * a file whose upload has not started costs nothing (claim()).
   */
  holdMs?: number;
  /** Backoff between tries of a waiting upload (default 1 s doubling to 60 s). */
  retryDelayMs?: { min: number; max: number };
  onFinished?(job: UploadJob, result: UploadResult): void;
  /** The job left the queue without reaching Girder: its bytes are in lost+found (err.keptAt). */
  onFailed?(job: UploadJob, err: UploadKeptError): void;
}

/**
 * The write-back upload queue. A submitted job is journaled (fsync'd) before submit resolves; the
 * queue then owns its temp file and uploads it (jobs of one file strictly in order, a queued job
 * dropped when a newer one of its file arrives). A failed try never drops a job: it waits, with
 * backoff up to retryDelayMs.max, and is tried again, at once after retryNow() (a new login,
 * SIGHUP). When the whole server refuses (credentials, network, 5xx, full storage) every upload
 * holds and one at a time probes. Only a job whose target Girder deleted leaves the queue: its
 * bytes go to `<cacheDir>/lost+found/<mount path>`. After a crash, start() resumes every journaled
 * job, continuing Girder uploads by their upload id.
 */
export class UploadQueue {
  private readonly log: Logger;
  private readonly records: JobRecords;
  private readonly lost: LostAndFound;
  private readonly cacheDir: string;
  private readonly jobs = new JobList();
  private readonly waits: Waits;
  private readonly scheduler: Scheduler;
  private readonly claims: FileClaims;
  /** Aborted by close(): the queue is closed. */
  private readonly abort = new AbortController();
  private started = false;

  constructor(opts: UploadQueueOptions) {
    const log = opts.logger;
    const { jobs } = this;
    const closed = this.abort.signal;
    const wake = (): void => this.scheduler.schedule();
    this.log = log;
    this.cacheDir = opts.cacheDir ?? dirname(opts.journalDir);
    const records = new JobRecords(new Journal(opts.journalDir, log), log);
    const lost = new LostAndFound(join(this.cacheDir, 'lost+found'), join(opts.journalDir, 'kept'), log);
    const waits = new Waits({
      jobs, log, journalDir: records.dir, closed, wake,
      holdMs: Math.max(0, opts.holdMs ?? 500), retryDelayMs: opts.retryDelayMs ?? { min: 1000, max: 60_000 },
    });
    const uploader = new Uploader(opts.store, log);
    const endings = new JobEndings({ jobs, records, waits, lost, uploader, log, onFinished: opts.onFinished, onFailed: opts.onFailed });
    const uploadTry = new UploadTry({ store: opts.store, uploader, jobs, records, waits, endings, log, signal: closed });
    this.records = records;
    this.lost = lost;
    this.waits = waits;
    this.scheduler = new Scheduler({ jobs, waits, concurrency: Math.max(1, opts.concurrency ?? 8), tryOnce: (e) => uploadTry.tryOnce(e), closed });
    this.claims = new FileClaims({ jobs, records, closed, wake, dropCancelled: (e) => endings.dropCancelled(e) });
  }

  private get closed(): boolean {
    return this.abort.signal.aborted;
  }

  /** Where uploads that can never reach Girder are kept. */
  get lostAndFoundDir(): string {
    return this.lost.dir;
  }

  /** Read the journal and resume every job in it (the newest per path). Resolves with those jobs. */
  async start(): Promise<UploadJob[]> {
    if (this.started) throw new Error('UploadQueue.start() called twice');
    const resumed = await this.records.recover(this.lost);
    this.started = true;
    for (const rec of resumed) this.enqueue(rec, rec.job, true);
    if (resumed.length > 0) {
      this.log.info({ jobs: resumed.length, paths: resumed.slice(0, 20).map((r) => r.job.path), journal: this.records.dir }, 'resuming uploads from the journal');
    }
    this.scheduler.schedule();
    return resumed.map((r) => r.job);
  }

  /**
   * Journal a job (durably) and queue it. From then on the queue owns `job.tempPath` (if submit
   * rejects, the caller still does). Resolves once the job is on disk; `done` settles when Girder
   * has the bytes. It rejects only with UploadKeptError (the target was deleted on the server; the
   * bytes are in lost+found), UploadCancelledError (cancel()) or UploadQueueClosedError (the queue
   * closed first; the job stays journaled). `done` never counts as an unhandled rejection.
   */
  submit(job: UploadJob): Promise<{ readonly done: Promise<UploadResult> }> {
    if (!this.started) return Promise.reject(new Error('UploadQueue.start() must run before submit()'));
    if (this.closed) return Promise.reject(new UploadQueueClosedError(job.path));
    return this.records.journalNew(job, (rec) => {
      if (this.closed) return { done: handled(Promise.reject(new UploadQueueClosedError(job.path))) };
      const entry = this.enqueue(rec, job, false);
      this.scheduler.schedule();
      return { done: entry.promise };
    });
  }

  /** The newest unfinished job of a path (its temp file holds the path's current bytes). */
  pendingFor(path: string): UploadJob | undefined {
    return this.jobs.newestOf(path);
  }

  /** Jobs read from the journal at start and not finished yet, with their outcome. */
  resumed(): Array<{ job: UploadJob; done: Promise<UploadResult> }> {
    return this.jobs.all.filter((e) => e.resumed).map((e) => ({ job: e.rec.job, done: e.promise }));
  }

  status(): UploadStatus[] {
    const now = Date.now();
    return this.jobs.all.filter((e) => !e.keeping).map((e): UploadStatus => {
      const base = { path: e.rec.job.path, size: e.rec.job.size, sent: e.sent, ...(e.resumed ? { resumed: true } : {}) };
      if (e.running) return { ...base, state: e.phase };
      const wait = this.waits.waitOf(e);
      if (wait === undefined) return { ...base, state: 'queued' };
      return { ...base, state: 'waiting', reason: wait.reason, retryInS: Math.max(0, Math.ceil((wait.retryAt - now) / 1000)) };
    });
  }

  /** Uploads that left the queue for lost+found (read from disk: survives restarts). */
  kept(): Promise<KeptUpload[]> {
    return this.lost.list();
  }

  /** Why the uploads of a file (its key, see UploadJob.key) wait, or undefined when none waits. */
  waitingFor(key: string): string | undefined {
    for (const e of this.jobs.all) {
      if (keyOf(e.rec.job) !== key || e.running) continue;
      const wait = this.waits.waitOf(e);
      if (wait !== undefined) return wait.reason;
    }
    return undefined;
  }

  /** Resolves at the next change of any job's state (started, waiting, finished, dropped). */
  nextChange(): Promise<void> {
    return this.jobs.nextChange();
  }

  /**
   * Hold the queued jobs of a file (its key) while none of them has started or left anything on
   * the server, so that a rename can give them the new path instead of waiting for the upload and
   * renaming it on Girder. Undefined when that is too late (or there is no such job).
   */
  claim(key: string): UploadClaim | undefined {
    return this.claims.claim(key);
  }

  /** Start a file's queued jobs without the hold of holdMs (someone waits for them: fsync). */
  hurry(key: string): void {
    this.waits.hurry(key);
  }

  /**
   * Try the waiting uploads now (only those waiting for `cause`, when given): after a successful
   * login, or on SIGHUP.
   */
  retryNow(why: string, cause?: WaitCause): void {
    this.waits.retryNow(why, cause);
  }

  /**
   * Drop the jobs of a file (its key) that are not running: it was removed or replaced through the
   * mount, so their bytes are not wanted. A running one ends its try first (it may still reach
   * Girder). Resolves once no job of the file is left.
   */
  cancel(key: string): Promise<void> {
    return this.claims.cancel(key);
  }

  /** Wait until no job is left, or the timeout passes. True when empty. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.jobs.size === 0) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return this.jobs.untilEmpty(timeoutMs);
  }

  /**
   * Stop: abort running uploads, take no more work. The journal stays for the next start(), and one
   * line says how many jobs wait there (an interrupted upload is not a failure).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.waits.stop();
    this.abort.abort(new UploadQueueClosedError('(queue)'));
    if (this.scheduler.runningCount > 0) await this.scheduler.settle(CLOSE_WAIT_MS);
    const pending = this.jobs.takeAll();
    if (pending.length > 0) {
      const n = pending.length;
      this.log.warn(
        { pending: n, journal: this.records.dir, cacheDir: this.cacheDir },
        `${n} upload${n === 1 ? '' : 's'} pending, journaled in ${this.records.dir}; they resume at the next start with --cache-dir ${this.cacheDir}`,
      );
    }
    for (const e of pending) {
      for (const w of e.waiters) w.reject(new UploadQueueClosedError(e.rec.job.path));
    }
    this.jobs.stopDrains();
    this.jobs.changed();
  }

  /** Queue a job; a queued one of its file that left nothing on the server is superseded by it. */
  private enqueue(rec: JournalRecord, job: UploadJob, resumed: boolean): Entry {
    const entry = newEntry(rec, job, resumed, this.waits.readyAt(resumed));
    for (const old of this.jobs.add(entry)) void this.records.discard(old.rec);
    this.jobs.changed();
    return entry;
  }
}
