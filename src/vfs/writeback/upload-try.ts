import { errorMessage } from '../../errors.js';
import { GirderError } from '../../girder/girder-error.js';
import type { GirderStore } from '../../girder/store.js';
import type { Logger } from '../../log.js';
import { classifyUploadFailure } from './classify-failure.js';
import type { JobEndings } from './job-endings.js';
import type { JobList } from './job-list.js';
import type { JobRecords } from './job-records.js';
import { keyOf, type Entry } from './queue-entry.js';
import { sha512File, type FileHash } from './sha512-file.js';
import type { JournalRecord, ResumeState, UploadTarget } from './types.js';
import type { Attempt, Placed, Uploader } from './uploader.js';
import type { Waits } from './waits.js';

const PROGRESS_LOG_MS = 10_000;

export interface UploadTryOptions {
  /** Only to set the item metadata of a job. */
  readonly store: GirderStore;
  readonly uploader: Uploader;
  readonly jobs: JobList;
  readonly records: JobRecords;
  readonly waits: Waits;
  readonly endings: JobEndings;
  readonly log: Logger;
  /** Aborted when the queue closes: the running tries end, and their jobs stay journaled. */
  readonly signal: AbortSignal;
}

/**
 * One try of a job: hash its temp file and narrow it to the file an earlier job of its path made
 * (both once), place the bytes with the Uploader and set the item metadata. Then the job finishes,
 * or its failure (classifyUploadFailure) makes it wait, start its upload afresh, go to lost+found
 * or be dropped.
 */
export class UploadTry {
  constructor(private readonly opts: UploadTryOptions) {}

  /** One try: hash and narrow (once), then place the bytes; a failure decides how the job waits. */
  async tryOnce(e: Entry): Promise<void> {
    const { uploader, endings, log, signal } = this.opts;
    const { rec } = e;
    e.lastTriedAt = Date.now();
    e.tries++;
    try {
      if (!e.prepared) {
        e.phase = 'hashing';
        const hash = rec.job.sha512 !== undefined ? { sha512: rec.job.sha512, size: rec.job.size } : await sha512File(rec.job.tempPath, signal);
        if (hash.size !== rec.job.size) {
          log.warn({ path: rec.job.path, expected: rec.job.size, actual: hash.size }, 'temp file size differs from the job: uploading the file as it is');
        }
        e.hash = hash;
        await this.narrowToEarlierFile(e);
        e.prepared = true;
      }
      const hash = e.hash as FileHash;
      e.phase = 'uploading';
      e.lastProgressLog = Date.now();
      const placed = await uploader.place(this.attempt(e, hash.sha512, hash.size, signal));
      await this.applyMeta(rec, placed);
      await endings.finish(e, placed);
    } catch (err) {
      if (signal.aborted) return; // close() answers the waiters; the job stays journaled
      if (e.cancelled) {
        await endings.dropCancelled(e);
        return;
      }
      e.lastTryAnswered = err instanceof GirderError && err.status > 0;
      await this.failed(e, err);
    }
  }

  /** Sort a failed try (classifyUploadFailure) and act on it. Never loses the job's bytes. */
  private async failed(e: Entry, err: unknown): Promise<void> {
    const { waits, records, endings, uploader, signal } = this.opts;
    const { rec } = e;
    const verdict = classifyUploadFailure(err, rec.job.tempPath);
    switch (verdict.action) {
      case 'wait':
        waits.wait(e, verdict);
        return;
      case 'restart-upload':
        await records.saveResume(rec, { uploadId: undefined, uploadFor: undefined }).catch(() => undefined);
        waits.wait(e, { cause: 'other', scope: 'job', reason: verdict.reason });
        return;
      case 'no-data':
        await endings.dropWithoutData(e, verdict.reason);
        return;
      case 'check-target': {
        let gone: boolean;
        try {
          gone = await uploader.targetGone(rec.job.target);
        } catch (probeErr) {
          if (signal.aborted) return;
          const again = classifyUploadFailure(probeErr, rec.job.tempPath);
          waits.wait(e, again.action === 'wait' ? again : { cause: 'other', scope: 'job', reason: verdict.reason });
          return;
        }
        if (gone) await endings.keep(e, goneReason(rec.job.target));
        else waits.wait(e, { cause: 'other', scope: 'job', reason: verdict.reason });
        return;
      }
    }
  }

  /** The job's item metadata; the bytes are in Girder already, so only a server-wide refusal is worth another try. */
  private async applyMeta(rec: JournalRecord, placed: Placed): Promise<void> {
    const meta = rec.job.meta;
    if (meta === undefined || Object.keys(meta).length === 0) return;
    try {
      await this.opts.store.setItemMeta(placed.file.itemId, meta);
    } catch (err) {
      const verdict = classifyUploadFailure(err, rec.job.tempPath);
      if (verdict.action === 'wait' && verdict.scope === 'server') throw err;
      this.opts.log.error({ path: rec.job.path, err: errorMessage(err) }, 'uploaded, but could not set the item metadata');
    }
  }

  private attempt(e: Entry, sha512: string, size: number, signal: AbortSignal): Attempt {
    const { records, log } = this.opts;
    const { rec } = e;
    return {
      job: rec.job, sha512, size, signal, first: !e.resumed && e.tries === 1, lastTryAnswered: e.lastTryAnswered,
      get resume(): Readonly<ResumeState> { return rec.resume; },
      save: (change) => records.saveResume(rec, change),
      onProgress: (sent, total) => {
        e.sent = sent;
        const now = Date.now();
        if (now - e.lastProgressLog >= PROGRESS_LOG_MS) {
          e.lastProgressLog = now;
          log.info({ path: rec.job.path, sent, total }, 'uploading');
        }
      },
    };
  }

  /** A new-file job queued behind an earlier one of its path replaces the file that one made. */
  private async narrowToEarlierFile(e: Entry): Promise<void> {
    const { jobs, records } = this.opts;
    const { rec } = e;
    const earlier = jobs.placedFor.get(keyOf(rec.job));
    jobs.placedFor.delete(keyOf(rec.job));
    const t = rec.job.target;
    if (earlier === undefined || t.kind === 'file') return;
    const fallback = t.kind === 'folder' ? { folderId: t.folderId, name: t.name } : { itemId: t.itemId, name: t.name };
    rec.job = { ...rec.job, target: { kind: 'file', fileId: earlier.id, fallback } };
    rec.resume = {};
    e.narrowed = true;
    await records.write(rec);
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
