import { randomBytes } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Journal } from './journal.js';
import type { LostAndFound } from './lost-found.js';
import { isEmpty, keyOf } from './queue-entry.js';
import type { JournalRecord, ResumeState, UploadJob } from './types.js';

/**
 * The queue's jobs on disk: a record journaled (fsync'd) for each new job, updated as its upload
 * goes, forgotten when the job leaves; and at start, the records an earlier run left.
 */
export class JobRecords {
  private seq = 0;
  /** Journal writes of new jobs, chained per path so they enter the queue in order. */
  private readonly submitChains = new Map<string, Promise<void>>();

  constructor(private readonly journal: Journal, private readonly log: Logger) {}

  get dir(): string {
    return this.journal.dir;
  }

  /**
   * Make the journal and lost+found ready, move there what earlier versions kept in the journal's
   * failed/, and read the records an earlier run left, oldest first: the newest of each file, and
   * an older one that left state on the server (an item made, an upload begun), which keeps its
   * turn to finish it, as it does while the queue runs (job-list.ts). Dropped, its empty item would
   * be in the newer job's way for ever. The other older ones are forgotten with their data.
   */
  async recover(lost: LostAndFound): Promise<JournalRecord[]> {
    await this.journal.init();
    await lost.init();
    await lost.adoptLegacy(this.journal.failedDir);
    const records = await this.journal.readAll();
    this.seq = records.reduce((max, r) => Math.max(max, r.seq + 1), 0);
    const newest = new Map(records.map((r) => [keyOf(r.job), r]));
    const kept: JournalRecord[] = [];
    for (const rec of records) {
      if (newest.get(keyOf(rec.job)) === rec || !isEmpty(rec.resume)) kept.push(rec);
      else await this.discard(rec);
    }
    return kept.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Journal a new job, after the new jobs of its file journaled before it, and hand its record to
   * `enter` in the same turn as its file's chain ends (finish() takes a job still being journaled
   * for a queued one, so no turn may pass between the two).
   */
  async journalNew<T>(job: UploadJob, enter: (rec: JournalRecord) => T): Promise<T> {
    const seq = this.seq++;
    const rec: JournalRecord = {
      v: 1, id: `${String(seq).padStart(10, '0')}-${randomBytes(4).toString('hex')}`, seq, submittedAt: Date.now(),
      job: plainJob(job), resume: {},
    };
    const key = keyOf(job);
    const written = (this.submitChains.get(key) ?? Promise.resolve()).catch(() => undefined).then(() => this.journal.write(rec));
    this.submitChains.set(key, written);
    try {
      await written;
    } finally {
      if (this.submitChains.get(key) === written) this.submitChains.delete(key);
    }
    return enter(rec);
  }

  /** A new job of the file (its key) is being journaled and enters the queue next. */
  journaling(key: string): boolean {
    return this.submitChains.has(key);
  }

  write(rec: JournalRecord): Promise<void> {
    return this.journal.write(rec);
  }

  remove(id: string): Promise<void> {
    return this.journal.remove(id);
  }

  /** Update the resume state and journal it (undefined values delete keys). */
  async saveResume(rec: JournalRecord, change: Partial<ResumeState>): Promise<void> {
    const next: Record<string, unknown> = { ...rec.resume };
    for (const [key, value] of Object.entries(change)) {
      if (value === undefined) delete next[key];
      else next[key] = value;
    }
    rec.resume = next as ResumeState;
    await this.journal.write(rec);
  }

  /** Forget a superseded job: its journal record, then its temp file. */
  async discard(rec: JournalRecord): Promise<void> {
    try {
      await this.journal.remove(rec.id);
      await removeFile(rec.job.tempPath);
      this.log.debug({ path: rec.job.path }, 'queued upload superseded by a newer one of the same path');
    } catch (err) {
      this.log.warn({ path: rec.job.path, err: errorMessage(err) }, 'could not remove a superseded upload job');
    }
  }
}

export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function plainJob(job: UploadJob): UploadJob {
  return {
    path: job.path, target: job.target, tempPath: job.tempPath, size: job.size,
    ...(job.key === undefined ? {} : { key: job.key }),
    ...(job.nameFree === true ? { nameFree: true } : {}),
    ...(job.sha512 === undefined ? {} : { sha512: job.sha512 }),
    ...(job.meta === undefined ? {} : { meta: job.meta }),
    ...(job.openedVersion === undefined ? {} : { openedVersion: job.openedVersion }),
  };
}
