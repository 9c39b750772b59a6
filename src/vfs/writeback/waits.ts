import type { Logger } from '../../log.js';
import type { WaitCause } from './classify-failure.js';
import type { JobList } from './job-list.js';
import { keyOf, type Entry, type Wait } from './queue-entry.js';
import { retryDelay } from './retry-policy.js';

export interface WaitsOptions {
  readonly jobs: JobList;
  readonly log: Logger;
  /** Named in log lines: where the waiting jobs stay. */
  readonly journalDir: string;
  /** How long a newly closed file waits before its upload starts (UploadQueueOptions.holdMs). */
  readonly holdMs: number;
  readonly retryDelayMs: { min: number; max: number };
  /** Aborted when the queue closes. */
  readonly closed: AbortSignal;
  /** Start what may run now (the scheduler). */
  readonly wake: () => void;
}

/**
 * Why queued jobs are not tried now, and when they are: the short hold after a close (holdMs, cut
 * short by hurry), each job's backoff after a failed try, and the server-wide hold while Girder
 * refuses every upload. retryNow() ends the waits at once.
 */
export class Waits {
  /** The server refuses every upload: nothing starts before retryAt, then one job at a time probes. */
  private hold: Wait | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: WaitsOptions) {}

  /** The server-wide hold, while there is one. */
  get serverHold(): Readonly<Wait> | undefined {
    return this.hold;
  }

  /** When a new job may start: holdMs from now, or at once for one read from the journal. */
  readyAt(resumed: boolean): number {
    return resumed ? 0 : Date.now() + this.opts.holdMs;
  }

  /** The wait that keeps an entry from being tried: its own, or the server-wide hold. */
  waitOf(e: Entry): Wait | undefined {
    if (this.hold !== undefined && e.wait?.scope !== 'job') return this.hold;
    return e.wait;
  }

  /** Back off: the job (and, for a server-wide refusal, every job) is tried again later. */
  wait(e: Entry, why: { cause: WaitCause; scope: 'server' | 'job'; reason: string }): void {
    const { log, jobs, journalDir, retryDelayMs } = this.opts;
    const now = Date.now();
    const { path } = e.rec.job;
    const prev = e.wait;
    const tries = (prev?.tries ?? 0) + 1;
    let retryAt = now + retryDelay(tries, retryDelayMs);
    if (why.scope === 'server') {
      const hold = this.hold;
      const holdTries = (hold?.tries ?? 0) + 1;
      this.hold = { ...why, since: hold?.since ?? now, tries: holdTries, retryAt: now + retryDelay(holdTries, retryDelayMs) };
      retryAt = this.hold.retryAt;
      const fields = { reason: why.reason, pending: jobs.size, retryInS: Math.ceil((retryAt - now) / 1000), journal: journalDir };
      if (hold?.reason !== why.reason) log.warn(fields, `uploads wait: ${why.reason}; they stay journaled and are tried again`);
      else log.debug({ ...fields, path }, 'uploads still wait');
    } else {
      // The server answered this job: whatever held every upload is over.
      this.endHold();
      const fields = { path, reason: why.reason, retryInS: Math.ceil((retryAt - now) / 1000), journal: journalDir };
      if (prev?.reason !== why.reason) log.warn(fields, `upload waits: ${why.reason}; it stays journaled and is tried again`);
      else log.debug(fields, 'upload still waits');
    }
    e.wait = { ...why, since: prev?.since ?? now, tries, retryAt };
    jobs.changed();
  }

  /** Girder took something: the jobs held by the server-wide hold are due at once. */
  endHold(): void {
    const hold = this.hold;
    if (hold === undefined) return;
    this.hold = undefined;
    let waiting = 0;
    for (const e of this.opts.jobs.all) {
      if (e.wait?.scope !== 'server') continue;
      e.wait.retryAt = 0;
      waiting++;
    }
    this.opts.log.info({ waitedS: Math.round((Date.now() - hold.since) / 1000), uploads: waiting }, 'Girder takes uploads again; the waiting ones go on');
  }

  /** Start a file's queued jobs without the hold of holdMs (someone waits for them: fsync). */
  hurry(key: string): void {
    let changed = false;
    for (const e of this.opts.jobs.all) {
      if (keyOf(e.rec.job) !== key || e.readyAt === 0) continue;
      e.readyAt = 0;
      changed = true;
    }
    if (changed) this.opts.wake();
  }

  /**
   * Try the waiting uploads now (only those waiting for `cause`, when given): after a successful
   * login, or on SIGHUP.
   */
  retryNow(why: string, cause?: WaitCause): void {
    if (this.opts.closed.aborted) return;
    let woke = 0;
    if (this.hold !== undefined && (cause === undefined || this.hold.cause === cause)) this.hold = undefined;
    for (const e of this.opts.jobs.all) {
      if (e.wait === undefined || (cause !== undefined && e.wait.cause !== cause)) continue;
      e.wait.retryAt = 0;
      e.wait.tries = 0;
      woke++;
    }
    if (woke > 0) this.opts.log.info({ uploads: woke, why }, 'trying the waiting uploads now');
    this.opts.wake();
  }

  /** Start what may run then (Infinity: nothing waits for a time). */
  wakeAt(at: number): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    if (at === Infinity || this.opts.closed.aborted) return;
    this.wakeTimer = setTimeout(() => this.opts.wake(), Math.max(0, at - Date.now()) + 5);
  }

  stop(): void {
    clearTimeout(this.wakeTimer);
  }
}
