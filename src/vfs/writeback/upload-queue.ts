import { randomBytes } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { errorMessage } from '../../errors.js';
import type { GirderStore } from '../../girder/store.js';
import type { FileDoc } from '../../girder/types.js';
import type { Logger } from '../../log.js';
import { Journal } from './journal.js';
import { isLostUpload, isTransient, retryDelay, sleep } from './retry-policy.js';
import { sha512File } from './sha512-file.js';
import {
  UploadQueueClosedError, type JournalRecord, type ResumeState, type UploadJob, type UploadResult, type UploadStatus,
} from './types.js';
import { Uploader, type Attempt, type Placed } from './uploader.js';

const PROGRESS_LOG_MS = 10_000;
/** How long close() waits for running uploads to notice the abort. */
const CLOSE_WAIT_MS = 10_000;

export interface UploadQueueOptions {
  store: GirderStore;
  /** Where the journal lives (created if missing); failed jobs go to `<journalDir>/failed/`. */
  journalDir: string;
  logger: Logger;
  /** Jobs uploading at once (default 2). */
  concurrency?: number;
  /** Backoff between retries of transient failures (default 1 s doubling to 60 s). */
  retryDelayMs?: { min: number; max: number };
  onFinished?(job: UploadJob, result: UploadResult): void;
  onFailed?(job: UploadJob, err: Error): void;
}

interface Waiter {
  resolve(result: UploadResult): void;
  reject(err: Error): void;
}

interface Entry {
  /** The job as submitted (what pendingFor and the callbacks hand back). */
  readonly job: UploadJob;
  /** The journaled form, whose target may be narrowed to the file an earlier job of the path made. */
  readonly rec: JournalRecord;
  readonly promise: Promise<UploadResult>;
  /** This job's caller and those of queued jobs it superseded. */
  readonly waiters: Waiter[];
  started: boolean;
  phase: UploadStatus['state'];
  sent: number;
  error?: string;
  lastProgressLog: number;
}

/**
 * The write-back upload queue. A submitted job is journaled (fsync'd) before submit resolves; the
 * queue then owns its temp file, uploads it (jobs of one path strictly in order, a queued job
 * dropped when a newer one of its path arrives), retries transient failures forever, and moves
 * jobs that fail for good, with their data, to `<journalDir>/failed/`. After a crash, start()
 * resumes every journaled job, continuing Girder uploads by their upload id.
 */
export class UploadQueue {
  private readonly store: GirderStore;
  private readonly log: Logger;
  private readonly journal: Journal;
  private readonly uploader: Uploader;
  private readonly concurrency: number;
  private readonly retryDelayMs: { min: number; max: number };
  private readonly onFinished: UploadQueueOptions['onFinished'];
  private readonly onFailed: UploadQueueOptions['onFailed'];

  /** Unfinished jobs, in submission order. */
  private readonly entries: Entry[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly busyKeys = new Set<string>();
  /** Journal writes of new jobs, chained per path so they enter the queue in order. */
  private readonly submitChains = new Map<string, Promise<void>>();
  /** File made by a finished job whose path has later jobs queued: those replace it. */
  private readonly placedFor = new Map<string, FileDoc>();
  private readonly drainWaiters = new Set<(empty: boolean) => void>();
  private readonly abort = new AbortController();
  private seq = 0;
  private started = false;
  private closed = false;

  constructor(opts: UploadQueueOptions) {
    this.store = opts.store;
    this.log = opts.logger;
    this.journal = new Journal(opts.journalDir, opts.logger);
    this.uploader = new Uploader(opts.store, opts.logger);
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
    this.retryDelayMs = opts.retryDelayMs ?? { min: 1000, max: 60_000 };
    this.onFinished = opts.onFinished;
    this.onFailed = opts.onFailed;
  }

  /** Read the journal and resume every job in it (the newest per path). Resolves with those jobs. */
  async start(): Promise<UploadJob[]> {
    if (this.started) throw new Error('UploadQueue.start() called twice');
    await this.journal.init();
    const records = await this.journal.readAll();
    this.seq = records.reduce((max, r) => Math.max(max, r.seq + 1), 0);
    const newest = new Map(records.map((r) => [keyOf(r.job), r]));
    for (const rec of records) {
      if (newest.get(keyOf(rec.job)) !== rec) await this.discard(rec);
    }
    this.started = true;
    const resumed = [...newest.values()].sort((a, b) => a.seq - b.seq);
    for (const rec of resumed) this.enqueue(rec, rec.job);
    if (resumed.length > 0) this.log.info({ jobs: resumed.length, paths: resumed.map((r) => r.job.path) }, 'resuming uploads from the journal');
    this.schedule();
    return resumed.map((r) => r.job);
  }

  /**
   * Journal a job (durably) and queue it. From then on the queue owns `job.tempPath` (if submit
   * rejects, the caller still does). Resolves once the job is on disk; `done` settles when Girder
   * has the bytes (it rejects on a permanent failure, or with UploadQueueClosedError when the queue
   * closes first). `done` never counts as an unhandled rejection.
   */
  async submit(job: UploadJob): Promise<{ readonly done: Promise<UploadResult> }> {
    if (!this.started) throw new Error('UploadQueue.start() must run before submit()');
    if (this.closed) throw new UploadQueueClosedError(job.path);
    const seq = this.seq++;
    const rec: JournalRecord = {
      v: 1, id: `${String(seq).padStart(10, '0')}-${randomBytes(4).toString('hex')}`, seq, submittedAt: Date.now(),
      job: plainJob(job), resume: {},
    };
    const path = job.path;
    const key = keyOf(job);
    const written = (this.submitChains.get(key) ?? Promise.resolve()).catch(() => undefined).then(() => this.journal.write(rec));
    this.submitChains.set(key, written);
    try {
      await written;
    } finally {
      if (this.submitChains.get(key) === written) this.submitChains.delete(key);
    }
    if (this.closed) return { done: handled(Promise.reject(new UploadQueueClosedError(path))) };
    const entry = this.enqueue(rec, job);
    this.schedule();
    return { done: entry.promise };
  }

  /** The newest unfinished job of a path (its temp file holds the path's current bytes). */
  pendingFor(path: string): UploadJob | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i] as Entry;
      if (e.rec.job.path === path) return e.job;
    }
    return undefined;
  }

  status(): UploadStatus[] {
    return this.entries.map((e) => ({
      path: e.rec.job.path, size: e.rec.job.size, sent: e.sent, state: e.phase,
      ...(e.error === undefined ? {} : { error: e.error }),
    }));
  }

  /** Wait until no job is left, or the timeout passes. True when empty. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.entries.length === 0) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (empty: boolean): void => {
        clearTimeout(timer);
        this.drainWaiters.delete(done);
        resolve(empty);
      };
      const timer = setTimeout(() => done(this.entries.length === 0), timeoutMs);
      this.drainWaiters.add(done);
    });
  }

  /** Stop: abort running uploads, take no more work. The journal stays for the next start(). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort(new UploadQueueClosedError('(queue)'));
    if (this.running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS); });
      await Promise.race([Promise.allSettled([...this.running]), waited]);
      clearTimeout(timer);
    }
    for (const e of this.entries.splice(0)) {
      for (const w of e.waiters) w.reject(new UploadQueueClosedError(e.rec.job.path));
    }
    for (const done of [...this.drainWaiters]) done(false);
  }

  private enqueue(rec: JournalRecord, job: UploadJob): Entry {
    const waiters: Waiter[] = [];
    const promise = handled(new Promise<UploadResult>((resolve, reject) => { waiters.push({ resolve, reject }); }));
    const entry: Entry = { job, rec, promise, waiters, started: false, phase: 'queued', sent: 0, lastProgressLog: 0 };
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const old = this.entries[i] as Entry;
      if (keyOf(old.rec.job) !== keyOf(rec.job) || old.started) continue;
      this.entries.splice(i, 1);
      entry.waiters.push(...old.waiters); // they get the newer job's outcome
      void this.discard(old.rec);
    }
    this.entries.push(entry);
    return entry;
  }

  /** Forget a superseded job: its journal record, then its temp file. */
  private async discard(rec: JournalRecord): Promise<void> {
    try {
      await this.journal.remove(rec.id);
      await removeFile(rec.job.tempPath);
      this.log.debug({ path: rec.job.path }, 'queued upload superseded by a newer one of the same path');
    } catch (err) {
      this.log.warn({ path: rec.job.path, err: errorMessage(err) }, 'could not remove a superseded upload job');
    }
  }

  private schedule(): void {
    if (this.closed) return;
    for (const e of this.entries) {
      if (this.running.size >= this.concurrency) break;
      const key = keyOf(e.rec.job);
      if (e.started || this.busyKeys.has(key)) continue;
      e.started = true;
      this.busyKeys.add(key);
      const run: Promise<void> = this.run(e).finally(() => {
        this.running.delete(run);
        this.busyKeys.delete(key);
        this.schedule();
        this.notifyDrain();
      });
      this.running.add(run);
    }
  }

  /** Hash, then place the bytes, retrying transient failures until done, failed for good, or closed. */
  private async run(e: Entry): Promise<void> {
    const { rec } = e;
    const signal = this.abort.signal;
    try {
      e.phase = 'hashing';
      const hash = rec.job.sha512 !== undefined ? { sha512: rec.job.sha512, size: rec.job.size } : await sha512File(rec.job.tempPath, signal);
      if (hash.size !== rec.job.size) {
        this.log.warn({ path: rec.job.path, expected: rec.job.size, actual: hash.size }, 'temp file size differs from the job: uploading the file as it is');
      }
      await this.narrowToEarlierFile(e);
      const attempt = this.attempt(e, hash.sha512, hash.size, signal);
      for (let tries = 1; ; tries++) {
        e.phase = 'uploading';
        e.lastProgressLog = Date.now();
        try {
          const placed = await this.uploader.place(attempt);
          await this.applyMeta(rec, placed);
          await this.finish(e, placed);
          return;
        } catch (err) {
          if (signal.aborted) throw err;
          if (isLostUpload(err)) await attempt.save({ uploadId: undefined, uploadFor: undefined });
          else if (!isTransient(err)) throw err;
          const delay = retryDelay(tries, this.retryDelayMs);
          e.phase = 'retrying';
          e.error = errorMessage(err);
          this.log.warn({ path: rec.job.path, attempt: tries, retryInMs: delay, error: e.error }, 'upload failed, retrying');
          await sleep(delay, signal);
          e.error = undefined;
        }
      }
    } catch (err) {
      if (signal.aborted) {
        this.remove(e);
        for (const w of e.waiters) w.reject(new UploadQueueClosedError(rec.job.path));
        return;
      }
      await this.fail(e, err);
    }
  }

  /** The job's item metadata; the bytes are in Girder already, so only a transient failure is worth a retry. */
  private async applyMeta(rec: JournalRecord, placed: Placed): Promise<void> {
    const meta = rec.job.meta;
    if (meta === undefined || Object.keys(meta).length === 0) return;
    try {
      await this.store.setItemMeta(placed.file.itemId, meta);
    } catch (err) {
      if (isTransient(err)) throw err;
      this.log.error({ path: rec.job.path, err: errorMessage(err) }, 'uploaded, but could not set the item metadata');
    }
  }

  private attempt(e: Entry, sha512: string, size: number, signal: AbortSignal): Attempt {
    const { rec } = e;
    return {
      job: rec.job, sha512, size, signal,
      get resume(): Readonly<ResumeState> { return rec.resume; },
      save: async (change) => {
        const next: Record<string, unknown> = { ...rec.resume };
        for (const [key, value] of Object.entries(change)) {
          if (value === undefined) delete next[key];
          else next[key] = value;
        }
        rec.resume = next as ResumeState;
        await this.journal.write(rec);
      },
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
    const earlier = this.placedFor.get(keyOf(rec.job));
    this.placedFor.delete(keyOf(rec.job));
    const t = rec.job.target;
    if (earlier === undefined || t.kind === 'file') return;
    const fallback = t.kind === 'folder' ? { folderId: t.folderId, name: t.name } : { itemId: t.itemId, name: t.name };
    rec.job = { ...rec.job, target: { kind: 'file', fileId: earlier.id, fallback } };
    rec.resume = {};
    await this.journal.write(rec);
  }

  private async finish(e: Entry, placed: Placed): Promise<void> {
    const { rec } = e;
    const result: UploadResult = { path: rec.job.path, file: placed.file, itemId: placed.file.itemId, how: placed.how, bytesSent: placed.bytesSent };
    let forgotten = true;
    try {
      await this.journal.remove(rec.id);
    } catch (err) {
      forgotten = false; // it reruns at the next start (finding Girder up to date), so keep its temp file
      this.log.error({ path: rec.job.path, err: errorMessage(err) }, 'could not remove a finished upload from the journal');
    }
    this.remove(e);
    if (forgotten) {
      await removeFile(rec.job.tempPath).catch((err: unknown) => {
        this.log.warn({ file: rec.job.tempPath, err: errorMessage(err) }, 'could not remove an uploaded temp file');
      });
    }
    const level = placed.bytesSent >= 1 << 20 || placed.how === 'copied' ? 'info' : 'debug';
    this.log[level]({ path: rec.job.path, how: placed.how, bytes: placed.bytesSent, fileId: placed.file.id }, 'upload done');
    try {
      this.onFinished?.(e.job, result);
    } catch (err) {
      this.log.error({ path: rec.job.path, err: errorMessage(err) }, 'onFinished callback threw');
    }
    // Decided right before the waiters learn of the file (no await in between): every job of the path
    // whose target was taken before that is queued or still being journaled, and replaces this file.
    const later = this.entries.some((x) => keyOf(x.rec.job) === keyOf(rec.job)) || this.submitChains.has(keyOf(rec.job));
    if (later) this.placedFor.set(keyOf(rec.job), placed.file);
    for (const w of e.waiters) w.resolve(result);
  }

  private async fail(e: Entry, err: unknown): Promise<void> {
    const { rec } = e;
    const reason = errorMessage(err);
    await this.uploader.abandon(rec.resume);
    let keptAt: string | undefined;
    try {
      keptAt = await this.journal.moveToFailed(rec, reason);
    } catch (moveErr) {
      this.log.error({ path: rec.job.path, err: errorMessage(moveErr) }, 'could not move a failed upload to failed/: its journal record stays');
    }
    this.remove(e);
    this.placedFor.delete(keyOf(rec.job));
    this.log.error({ path: rec.job.path, reason, keptAt: keptAt ?? rec.job.tempPath }, 'upload failed for good; the data is kept');
    const error = err instanceof Error ? err : new Error(reason);
    try {
      this.onFailed?.(e.job, error);
    } catch (cbErr) {
      this.log.error({ path: rec.job.path, err: errorMessage(cbErr) }, 'onFailed callback threw');
    }
    for (const w of e.waiters) w.reject(error);
  }

  private remove(e: Entry): void {
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
  }

  private notifyDrain(): void {
    if (this.entries.length > 0) return;
    for (const done of [...this.drainWaiters]) done(true);
  }
}

/** Mark a promise as handled: a caller that ignores a write-back result must not crash the process. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** Jobs of one key run in order and supersede each other: the file's own key, or its path. */
function keyOf(job: UploadJob): string {
  return job.key ?? job.path;
}

function plainJob(job: UploadJob): UploadJob {
  return {
    path: job.path, target: job.target, tempPath: job.tempPath, size: job.size,
    ...(job.key === undefined ? {} : { key: job.key }),
    ...(job.sha512 === undefined ? {} : { sha512: job.sha512 }),
    ...(job.meta === undefined ? {} : { meta: job.meta }),
  };
}

async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
