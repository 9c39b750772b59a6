import { dirname, join } from 'node:path';
import { errorMessage } from '../../errors.js';
import type { GirderStore } from '../../girder/store.js';
import { GirderError } from '../../girder/girder-error.js';
import type { Logger } from '../../log.js';
import type { UploadClaim } from '../ports.js';
import { classifyUploadFailure, type WaitCause } from './classify-failure.js';
import { FileClaims } from './file-claims.js';
import { JobList } from './job-list.js';
import { JobRecords, removeFile } from './job-records.js';
import { Journal } from './journal.js';
import { LostAndFound, type KeptUpload } from './lost-found.js';
import { handled, keyOf, newEntry, type Entry } from './queue-entry.js';
import { sha512File, type FileHash } from './sha512-file.js';
import {
  UploadCancelledError, UploadKeptError, UploadQueueClosedError,
  type JournalRecord, type ResumeState, type UploadJob, type UploadResult, type UploadStatus, type UploadTarget,
} from './types.js';
import { Uploader, type Attempt, type Placed } from './uploader.js';
import { Waits } from './waits.js';

const PROGRESS_LOG_MS = 10_000;
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
  private readonly store: GirderStore;
  private readonly log: Logger;
  private readonly records: JobRecords;
  private readonly lost: LostAndFound;
  private readonly cacheDir: string;
  private readonly uploader: Uploader;
  private readonly concurrency: number;
  private readonly onFinished: UploadQueueOptions['onFinished'];
  private readonly onFailed: UploadQueueOptions['onFailed'];

  private readonly jobs = new JobList();
  private readonly waits: Waits;
  private readonly claims: FileClaims;
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private started = false;

  constructor(opts: UploadQueueOptions) {
    this.store = opts.store;
    this.log = opts.logger;
    this.cacheDir = opts.cacheDir ?? dirname(opts.journalDir);
    this.records = new JobRecords(new Journal(opts.journalDir, opts.logger), opts.logger);
    this.lost = new LostAndFound(join(this.cacheDir, 'lost+found'), join(opts.journalDir, 'kept'), opts.logger);
    this.uploader = new Uploader(opts.store, opts.logger);
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.waits = new Waits({
      jobs: this.jobs, log: opts.logger, journalDir: this.records.dir,
      holdMs: Math.max(0, opts.holdMs ?? 500), retryDelayMs: opts.retryDelayMs ?? { min: 1000, max: 60_000 },
      closed: this.abort.signal, wake: () => this.schedule(),
    });
    this.claims = new FileClaims({
      jobs: this.jobs, records: this.records, closed: this.abort.signal,
      wake: () => this.schedule(), dropCancelled: (e) => this.dropCancelled(e),
    });
    this.onFinished = opts.onFinished;
    this.onFailed = opts.onFailed;
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
    this.schedule();
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
      this.schedule();
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
    return this.jobs.all.map((e): UploadStatus => {
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
    if (this.running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS); });
      await Promise.race([Promise.allSettled([...this.running]), waited]);
      clearTimeout(timer);
    }
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

  /** Start what may run now: one job per file, in order, up to the limit (one while the server holds). */
  private schedule(): void {
    if (this.closed) return;
    const now = Date.now();
    const hold = this.waits.serverHold;
    if (hold !== undefined && hold.retryAt > now) {
      this.waits.wakeAt(hold.retryAt);
      return;
    }
    let wake = Infinity;
    const seen = new Set<string>();
    const ready: Entry[] = [];
    for (const e of this.jobs.all) {
      const key = keyOf(e.rec.job);
      if (seen.has(key)) continue; // an earlier job of the file goes first
      seen.add(key);
      if (e.running || e.claimed) continue;
      if (e.readyAt > now) {
        wake = Math.min(wake, e.readyAt);
        continue;
      }
      if (e.wait !== undefined && e.wait.retryAt > now) {
        wake = Math.min(wake, e.wait.retryAt);
        continue;
      }
      ready.push(e);
    }
    const limit = hold === undefined ? this.concurrency : 1;
    if (hold !== undefined) ready.sort((a, b) => a.lastTriedAt - b.lastTriedAt); // the probe: the least recently tried
    for (const e of ready) {
      if (this.running.size >= limit) break;
      this.launch(e);
    }
    this.waits.wakeAt(wake);
  }

  private launch(e: Entry): void {
    e.running = true;
    const run: Promise<void> = this.tryOnce(e).finally(() => {
      e.running = false;
      this.running.delete(run);
      this.jobs.changed();
      this.schedule();
      this.jobs.notifyDrain();
    });
    this.running.add(run);
    this.jobs.changed();
  }

  /** One try: hash and narrow (once), then place the bytes; a failure decides how the job waits. */
  private async tryOnce(e: Entry): Promise<void> {
    const { rec } = e;
    const signal = this.abort.signal;
    e.lastTriedAt = Date.now();
    e.tries++;
    try {
      if (!e.prepared) {
        e.phase = 'hashing';
        const hash = rec.job.sha512 !== undefined ? { sha512: rec.job.sha512, size: rec.job.size } : await sha512File(rec.job.tempPath, signal);
        if (hash.size !== rec.job.size) {
          this.log.warn({ path: rec.job.path, expected: rec.job.size, actual: hash.size }, 'temp file size differs from the job: uploading the file as it is');
        }
        e.hash = hash;
        await this.narrowToEarlierFile(e);
        e.prepared = true;
      }
      const hash = e.hash as FileHash;
      e.phase = 'uploading';
      e.lastProgressLog = Date.now();
      const placed = await this.uploader.place(this.attempt(e, hash.sha512, hash.size, signal));
      await this.applyMeta(rec, placed);
      await this.finish(e, placed);
    } catch (err) {
      if (signal.aborted) return; // close() answers the waiters; the job stays journaled
      if (e.cancelled) {
        await this.dropCancelled(e);
        return;
      }
      e.lastTryAnswered = err instanceof GirderError && err.status > 0;
      await this.failed(e, err);
    }
  }

  /** Sort a failed try (classifyUploadFailure) and act on it. Never loses the job's bytes. */
  private async failed(e: Entry, err: unknown): Promise<void> {
    const { rec } = e;
    const verdict = classifyUploadFailure(err, rec.job.tempPath);
    switch (verdict.action) {
      case 'wait':
        this.waits.wait(e, verdict);
        return;
      case 'restart-upload':
        await this.records.saveResume(rec, { uploadId: undefined, uploadFor: undefined }).catch(() => undefined);
        this.waits.wait(e, { cause: 'other', scope: 'job', reason: verdict.reason });
        return;
      case 'no-data':
        await this.dropWithoutData(e, verdict.reason);
        return;
      case 'check-target': {
        let gone: boolean;
        try {
          gone = await this.uploader.targetGone(rec.job.target);
        } catch (probeErr) {
          if (this.abort.signal.aborted) return;
          const again = classifyUploadFailure(probeErr, rec.job.tempPath);
          this.waits.wait(e, again.action === 'wait' ? again : { cause: 'other', scope: 'job', reason: verdict.reason });
          return;
        }
        if (gone) await this.keep(e, goneReason(rec.job.target));
        else this.waits.wait(e, { cause: 'other', scope: 'job', reason: verdict.reason });
        return;
      }
    }
  }

  /** The job's item metadata; the bytes are in Girder already, so only a server-wide refusal is worth another try. */
  private async applyMeta(rec: JournalRecord, placed: Placed): Promise<void> {
    const meta = rec.job.meta;
    if (meta === undefined || Object.keys(meta).length === 0) return;
    try {
      await this.store.setItemMeta(placed.file.itemId, meta);
    } catch (err) {
      const verdict = classifyUploadFailure(err, rec.job.tempPath);
      if (verdict.action === 'wait' && verdict.scope === 'server') throw err;
      this.log.error({ path: rec.job.path, err: errorMessage(err) }, 'uploaded, but could not set the item metadata');
    }
  }

  private attempt(e: Entry, sha512: string, size: number, signal: AbortSignal): Attempt {
    const { rec } = e;
    return {
      job: rec.job, sha512, size, signal, first: !e.resumed && e.tries === 1, lastTryAnswered: e.lastTryAnswered,
      get resume(): Readonly<ResumeState> { return rec.resume; },
      save: (change) => this.records.saveResume(rec, change),
      onProgress: (sent, total) => {
        e.sent = sent;
        const now = Date.now();
        if (now - e.lastProgressLog >= PROGRESS_LOG_MS) {
          e.lastProgressLog = now;
          this.log.info({ path: rec.job.path, sent, total }, 'uploading');
        }
      },
    };
  }

  /** A new-file job queued behind an earlier one of its path replaces the file that one made. */
  private async narrowToEarlierFile(e: Entry): Promise<void> {
    const { rec } = e;
    const earlier = this.jobs.placedFor.get(keyOf(rec.job));
    this.jobs.placedFor.delete(keyOf(rec.job));
    const t = rec.job.target;
    if (earlier === undefined || t.kind === 'file') return;
    const fallback = t.kind === 'folder' ? { folderId: t.folderId, name: t.name } : { itemId: t.itemId, name: t.name };
    rec.job = { ...rec.job, target: { kind: 'file', fileId: earlier.id, fallback } };
    rec.resume = {};
    e.narrowed = true;
    await this.records.write(rec);
  }

  private async finish(e: Entry, placed: Placed): Promise<void> {
    const { rec } = e;
    const result: UploadResult = {
      path: rec.job.path, file: placed.file, itemId: placed.file.itemId, how: placed.how, bytesSent: placed.bytesSent,
      ...(placed.item === undefined ? {} : { item: placed.item }),
    };
    this.waits.endHold();
    let forgotten = true;
    try {
      await this.records.remove(rec.id);
    } catch (err) {
      forgotten = false; // it reruns at the next start (finding Girder up to date), so keep its temp file
      this.log.error({ path: rec.job.path, err: errorMessage(err) }, 'could not remove a finished upload from the journal');
    }
    if (forgotten) {
      await removeFile(rec.job.tempPath).catch((err: unknown) => {
        this.log.warn({ file: rec.job.tempPath, err: errorMessage(err) }, 'could not remove an uploaded temp file');
      });
    }
    if (e.wait !== undefined) {
      this.log.info({ path: rec.job.path, waitedS: Math.round((Date.now() - e.wait.since) / 1000), how: placed.how }, 'upload done after waiting');
    } else {
      const level = placed.bytesSent >= 1 << 20 || placed.how === 'copied' ? 'info' : 'debug';
      this.log[level]({ path: rec.job.path, how: placed.how, bytes: placed.bytesSent, fileId: placed.file.id }, 'upload done');
    }
    try {
      this.onFinished?.(e.job, result);
    } catch (err) {
      this.log.error({ path: rec.job.path, err: errorMessage(err) }, 'onFinished callback threw');
    }
    // The job stays in the queue (running) until here, right before its waiters learn of the file
    // (no await in between): until they do, the file it made is known to nobody else, so a cancel()
    // must wait for it and a claim() of a later job must not move that job elsewhere.
    this.jobs.remove(e);
    // Every job of the path whose target was taken before now is queued or still being journaled,
    // and replaces this file.
    const later = this.jobs.all.some((x) => keyOf(x.rec.job) === keyOf(rec.job)) || this.records.journaling(keyOf(rec.job));
    if (later) this.jobs.placedFor.set(keyOf(rec.job), placed.file);
    for (const w of e.waiters) w.resolve(result);
    this.jobs.changed();
  }

  /**
   * The job can never reach Girder: give its bytes a name in lost+found, then forget the job. If
   * that move fails, nothing changed: the job stays journaled and waits.
   */
  private async keep(e: Entry, reason: string): Promise<void> {
    const { rec } = e;
    let keptAt: string;
    try {
      keptAt = await this.lost.keep(rec.id, rec.job.path, rec.job.tempPath, reason);
    } catch (err) {
      this.waits.wait(e, { cause: 'other', scope: 'job', reason: `${reason}, and moving its bytes to ${this.lost.dir} failed (${errorMessage(err)})` });
      return;
    }
    await this.uploader.abandon(rec.resume);
    try {
      await this.records.remove(rec.id);
      await removeFile(rec.job.tempPath);
    } catch (err) {
      this.log.error({ path: rec.job.path, keptAt, err: errorMessage(err) }, 'could not forget an upload kept in lost+found: the next start keeps a second copy');
    }
    this.jobs.remove(e);
    this.jobs.placedFor.delete(keyOf(rec.job));
    this.log.warn({ path: rec.job.path, reason, keptAt }, `upload impossible (${reason}): its bytes are kept at ${keptAt}`);
    const error = new UploadKeptError(rec.job.path, reason, keptAt);
    try {
      this.onFailed?.(e.job, error);
    } catch (cbErr) {
      this.log.error({ path: rec.job.path, err: errorMessage(cbErr) }, 'onFailed callback threw');
    }
    for (const w of e.waiters) w.reject(error);
    this.jobs.changed();
  }

  /** The job's data file is gone (removed from outside): nothing of it can ever be uploaded. */
  private async dropWithoutData(e: Entry, reason: string): Promise<void> {
    const { rec } = e;
    try {
      await this.records.remove(rec.id);
    } catch (err) {
      this.log.warn({ path: rec.job.path, err: errorMessage(err) }, 'could not remove the journal record of an upload without data');
    }
    this.jobs.remove(e);
    this.log.error({ path: rec.job.path, reason }, `upload dropped: ${reason} (removed from outside the daemon?); nothing of it can be uploaded`);
    const error = new Error(`${rec.job.path}: ${reason}`);
    for (const w of e.waiters) w.reject(error);
    this.jobs.changed();
  }

  /** Forget a cancelled job (its journal record and data, what it made on the server); resolves once the record is gone. */
  private async dropCancelled(e: Entry): Promise<void> {
    const { rec } = e;
    this.jobs.remove(e);
    void this.uploader.abandon(rec.resume).catch(() => undefined);
    this.log.debug({ path: rec.job.path }, 'upload dropped: its file was removed or replaced');
    const error = new UploadCancelledError(rec.job.path);
    for (const w of e.waiters) w.reject(error);
    this.jobs.changed();
    this.jobs.notifyDrain();
    await this.records.discard(rec);
  }

}

/** What a target whose deletion uploader.targetGone() confirmed was. */
function goneReason(target: UploadTarget): string {
  switch (target.kind) {
    case 'folder': return 'the folder it was written to was deleted on the server';
    case 'item': return 'the item directory it was written to was deleted on the server';
    case 'file': return target.fallback === undefined
      ? 'the file was deleted on the server'
      : 'the file and the folder it was in were deleted on the server';
  }
}
