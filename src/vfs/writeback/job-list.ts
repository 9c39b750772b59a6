import type { FileDoc } from '../../girder/types.js';
import { isEmpty, keyOf, type Entry } from './queue-entry.js';
import type { UploadJob } from './types.js';

/** The queue's unfinished jobs in submission order, and who waits for them to change or run out. */
export class JobList {
  private readonly entries: Entry[] = [];
  /** File made by a finished job whose path has later jobs queued: those replace it. */
  readonly placedFor = new Map<string, FileDoc>();
  private readonly drainWaiters = new Set<(empty: boolean) => void>();
  private changeWaiters: Array<() => void> = [];

  get all(): readonly Entry[] {
    return this.entries;
  }

  get size(): number {
    return this.entries.length;
  }

  ofKey(key: string): Entry[] {
    return this.entries.filter((e) => keyOf(e.rec.job) === key);
  }

  /** The newest unfinished job of a path. */
  newestOf(path: string): UploadJob | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i] as Entry;
      if (e.rec.job.path === path) return e.job;
    }
    return undefined;
  }

  /**
   * Queue a job. The queued jobs of its key that left nothing on the server leave the queue (their
   * callers get the newer job's outcome); returns them, for the caller to forget.
   */
  add(entry: Entry): Entry[] {
    const superseded: Entry[] = [];
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const old = this.entries[i] as Entry;
      // A job that left state on the server (an item made, an upload begun) keeps its turn to finish it.
      if (keyOf(old.rec.job) !== keyOf(entry.rec.job) || old.running || old.narrowed || !isEmpty(old.rec.resume)) continue;
      this.entries.splice(i, 1);
      entry.waiters.push(...old.waiters); // they get the newer job's outcome
      superseded.push(old);
    }
    this.entries.push(entry);
    return superseded;
  }

  remove(e: Entry): void {
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
  }

  takeAll(): Entry[] {
    return this.entries.splice(0);
  }

  /** Resolves at the next change of any job's state. */
  nextChange(): Promise<void> {
    return new Promise((resolve) => this.changeWaiters.push(resolve));
  }

  changed(): void {
    const waiters = this.changeWaiters;
    this.changeWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves true once no job is left, or with whether none is when the timeout passes. */
  untilEmpty(timeoutMs: number): Promise<boolean> {
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

  notifyDrain(): void {
    if (this.entries.length > 0) return;
    for (const done of [...this.drainWaiters]) done(true);
  }

  /** The queue closed: every untilEmpty() resolves false. */
  stopDrains(): void {
    for (const done of [...this.drainWaiters]) done(false);
  }
}
