import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { JobList } from './job-list.js';
import { removeFile, type JobRecords } from './job-records.js';
import type { LostAndFound } from './lost-found.js';
import { keyOf, type Entry } from './queue-entry.js';
import { UploadCancelledError, UploadKeptError, type UploadJob, type UploadResult } from './types.js';
import type { Placed, Uploader } from './uploader.js';
import type { Waits } from './waits.js';

export interface JobEndingsOptions {
  readonly jobs: JobList;
  readonly records: JobRecords;
  readonly waits: Waits;
  readonly lost: LostAndFound;
  /** Only to remove what a job that left for good made on the server. */
  readonly uploader: Uploader;
  readonly log: Logger;
  readonly onFinished: ((job: UploadJob, result: UploadResult) => void) | undefined;
  readonly onFailed: ((job: UploadJob, err: UploadKeptError) => void) | undefined;
}

/**
 * The ways a job leaves the queue: finished (Girder has its bytes), kept (Girder can never take
 * them: they go to lost+found), or dropped (its data file vanished, or its file was removed or
 * replaced through the mount). Each forgets the job's journal record and answers its callers.
 */
export class JobEndings {
  constructor(private readonly opts: JobEndingsOptions) {}

  async finish(e: Entry, placed: Placed): Promise<void> {
    const { jobs, records, waits, log, onFinished } = this.opts;
    const { rec } = e;
    const result: UploadResult = {
      path: rec.job.path, file: placed.file, itemId: placed.file.itemId, how: placed.how, bytesSent: placed.bytesSent,
      ...(placed.item === undefined ? {} : { item: placed.item }),
    };
    waits.endHold();
    let forgotten = true;
    try {
      await records.remove(rec.id);
    } catch (err) {
      forgotten = false; // it reruns at the next start (finding Girder up to date), so keep its temp file
      log.error({ path: rec.job.path, err: errorMessage(err) }, 'could not remove a finished upload from the journal');
    }
    if (forgotten) {
      await removeFile(rec.job.tempPath).catch((err: unknown) => {
        log.warn({ file: rec.job.tempPath, err: errorMessage(err) }, 'could not remove an uploaded temp file');
      });
    }
    if (e.wait !== undefined) {
      log.info({ path: rec.job.path, waitedS: Math.round((Date.now() - e.wait.since) / 1000), how: placed.how }, 'upload done after waiting');
    } else {
      const level = placed.bytesSent >= 1 << 20 || placed.how === 'copied' ? 'info' : 'debug';
      log[level]({ path: rec.job.path, how: placed.how, bytes: placed.bytesSent, fileId: placed.file.id }, 'upload done');
    }
    try {
      onFinished?.(e.job, result);
    } catch (err) {
      log.error({ path: rec.job.path, err: errorMessage(err) }, 'onFinished callback threw');
    }
    // The job stays in the queue (running) until here, right before its waiters learn of the file
    // (no await in between): until they do, the file it made is known to nobody else, so a cancel()
    // must wait for it and a claim() of a later job must not move that job elsewhere.
    jobs.remove(e);
    // Every job of the path whose target was taken before now is queued or still being journaled,
    // and replaces this file.
    const later = jobs.all.some((x) => keyOf(x.rec.job) === keyOf(rec.job)) || records.journaling(keyOf(rec.job));
    if (later) jobs.placedFor.set(keyOf(rec.job), placed.file);
    for (const w of e.waiters) w.resolve(result);
    jobs.changed();
  }

  /**
   * The job can never reach Girder: give its bytes a name in lost+found, then forget the job. If
   * that move fails, nothing changed: the job stays journaled and waits.
   */
  async keep(e: Entry, reason: string): Promise<void> {
    const { jobs, records, waits, lost, uploader, log, onFailed } = this.opts;
    const { rec } = e;
    let keptAt: string;
    // From here status lists it among the kept ones (read from disk) or nowhere, never as both.
    e.keeping = true;
    try {
      keptAt = await lost.keep(rec.id, rec.job.path, rec.job.tempPath, reason);
    } catch (err) {
      e.keeping = false;
      waits.wait(e, { cause: 'other', scope: 'job', reason: `${reason}, and moving its bytes to ${lost.dir} failed (${errorMessage(err)})` });
      return;
    }
    await uploader.abandon(rec.resume);
    try {
      await records.remove(rec.id);
      await removeFile(rec.job.tempPath);
    } catch (err) {
      log.error({ path: rec.job.path, keptAt, err: errorMessage(err) }, 'could not forget an upload kept in lost+found: the next start keeps a second copy');
    }
    jobs.remove(e);
    jobs.placedFor.delete(keyOf(rec.job));
    log.warn({ path: rec.job.path, reason, keptAt }, `upload impossible (${reason}): its bytes are kept at ${keptAt}`);
    const error = new UploadKeptError(rec.job.path, reason, keptAt);
    try {
      onFailed?.(e.job, error);
    } catch (cbErr) {
      log.error({ path: rec.job.path, err: errorMessage(cbErr) }, 'onFailed callback threw');
    }
    for (const w of e.waiters) w.reject(error);
    jobs.changed();
  }

  /** The job's data file is gone (removed from outside): nothing of it can ever be uploaded. */
  async dropWithoutData(e: Entry, reason: string): Promise<void> {
    const { jobs, records, log } = this.opts;
    const { rec } = e;
    try {
      await records.remove(rec.id);
    } catch (err) {
      log.warn({ path: rec.job.path, err: errorMessage(err) }, 'could not remove the journal record of an upload without data');
    }
    jobs.remove(e);
    log.error({ path: rec.job.path, reason }, `upload dropped: ${reason} (removed from outside the daemon?); nothing of it can be uploaded`);
    const error = new Error(`${rec.job.path}: ${reason}`);
    for (const w of e.waiters) w.reject(error);
    jobs.changed();
  }

  /** Forget a cancelled job (its journal record and data, what it made on the server); resolves once the record is gone. */
  async dropCancelled(e: Entry): Promise<void> {
    const { jobs, records, uploader, log } = this.opts;
    const { rec } = e;
    jobs.remove(e);
    void uploader.abandon(rec.resume).catch(() => undefined);
    log.debug({ path: rec.job.path }, 'upload dropped: its file was removed or replaced');
    const error = new UploadCancelledError(rec.job.path);
    for (const w of e.waiters) w.reject(error);
    jobs.changed();
    jobs.notifyDrain();
    await records.discard(rec);
  }
}
