import type { UploadClaim } from '../ports.js';
import type { JobList } from './job-list.js';
import type { JobRecords } from './job-records.js';
import { isEmpty, type Entry } from './queue-entry.js';

export interface FileClaimsOptions {
  readonly jobs: JobList;
  readonly records: JobRecords;
  /** Aborted when the queue closes. */
  readonly closed: AbortSignal;
  /** Start what may run now (the scheduler). */
  readonly wake: () => void;
  /** Forget a cancelled job that is not running; resolves once its record is gone. */
  readonly dropCancelled: (e: Entry) => Promise<void>;
}

/**
 * What a rename or a removal through the mount does to a file's queued jobs: claim() holds them so
 * that a rename gives them the new path, cancel() drops them when the file is removed or replaced.
 * Neither takes a job that is running: until its callers know the file it made, that file is
 * nobody else's.
 */
export class FileClaims {
  constructor(private readonly opts: FileClaimsOptions) {}

  /**
   * Hold the queued jobs of a file (its key) while none of them has started or left anything on
   * the server, so that a rename can give them the new path instead of waiting for the upload and
   * renaming it on Girder. Undefined when that is too late (or there is no such job).
   */
  claim(key: string): UploadClaim | undefined {
    const { jobs, records } = this.opts;
    const mine = jobs.ofKey(key);
    // placedFor: an earlier job made the file, which these will replace wherever it is
    if (mine.length === 0 || this.opts.closed.aborted || jobs.placedFor.has(key)) return undefined;
    if (mine.some((e) => e.running || e.claimed || e.tries > 0 || e.narrowed || !isEmpty(e.rec.resume) || e.cancelled)) return undefined;
    for (const e of mine) e.claimed = true;
    let released = false;
    return {
      retarget: async (path, target, nameFree) => {
        for (const e of mine) {
          e.rec.job = { ...e.rec.job, path, target, nameFree };
          e.job = { ...e.job, path, target, nameFree };
          await records.write(e.rec);
        }
      },
      release: () => {
        if (released) return;
        released = true;
        for (const e of mine) e.claimed = false;
        this.opts.wake();
      },
    };
  }

  /**
   * Drop the jobs of a file (its key) that are not running: it was removed or replaced through the
   * mount, so their bytes are not wanted. A running one ends its try first (it may still reach
   * Girder). Resolves once no job of the file is left.
   */
  async cancel(key: string): Promise<void> {
    const { jobs, closed, dropCancelled } = this.opts;
    for (;;) {
      const mine = jobs.ofKey(key);
      if (mine.length === 0 || closed.aborted) return;
      const dropped: Array<Promise<void>> = [];
      for (const e of mine) {
        e.cancelled = true;
        if (!e.running) dropped.push(dropCancelled(e));
      }
      const change = jobs.nextChange();
      await Promise.all(dropped);
      if (mine.some((e) => e.running)) await change;
    }
  }
}
