import type { JobList } from './job-list.js';
import { keyOf, type Entry } from './queue-entry.js';
import type { Waits } from './waits.js';

export interface SchedulerOptions {
  readonly jobs: JobList;
  readonly waits: Waits;
  /** Tries at once while the server takes uploads (one while it holds them all). */
  readonly concurrency: number;
  /** One try of a job (UploadTry): all the scheduler knows of uploading. */
  readonly tryOnce: (e: Entry) => Promise<void>;
  /** Aborted when the queue closes: nothing starts any more. */
  readonly closed: AbortSignal;
}

/**
 * Starts the jobs that may try now, and looks again whenever a try ends or a wait is over. Like
 * rclone's write-back queue, which knows only a put function, it knows only how to try a job.
 */
export class Scheduler {
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly opts: SchedulerOptions) {}

  /** Tries under way. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Start what may run now: one job per file, in order, up to the limit (one while the server holds). */
  schedule(): void {
    const { jobs, waits, closed } = this.opts;
    if (closed.aborted) return;
    const now = Date.now();
    const hold = waits.serverHold;
    if (hold !== undefined && hold.retryAt > now) {
      waits.wakeAt(hold.retryAt);
      return;
    }
    let wake = Infinity;
    const seen = new Set<string>();
    const ready: Entry[] = [];
    for (const e of jobs.all) {
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
    const limit = hold === undefined ? this.opts.concurrency : 1;
    if (hold !== undefined) ready.sort((a, b) => a.lastTriedAt - b.lastTriedAt); // the probe: the least recently tried
    for (const e of ready) {
      if (this.running.size >= limit) break;
      this.launch(e);
    }
    waits.wakeAt(wake);
  }

  /** Wait for the tries under way to end, at most `ms` (they were told to stop: close()). */
  async settle(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
    await Promise.race([Promise.allSettled([...this.running]), waited]);
    clearTimeout(timer);
  }

  private launch(e: Entry): void {
    const { jobs } = this.opts;
    e.running = true;
    const run: Promise<void> = this.opts.tryOnce(e).finally(() => {
      e.running = false;
      this.running.delete(run);
      jobs.changed();
      this.schedule();
      jobs.notifyDrain();
    });
    this.running.add(run);
    jobs.changed();
  }
}
