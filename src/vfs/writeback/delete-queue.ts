/**
 * Write-back of removals. An unlink or the rmdir of an emptied folder is answered once the entry is
 * gone from the mount's view and the removal is journaled; Girder's DELETE follows in the
 * background, a few at a time. `rm -r` then costs one request (a folder's recursive delete covers
 * the removals still queued under it), and programs that remove many files (git gc, rsync --delete)
 * stop waiting on one round trip each. The queue knows only the function that removes (rclone's
 * write-back queue knows only a put).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { GirderError, isTransient } from '../../girder/girder-error.js';
import type { Logger } from '../../log.js';
import type { DeleteJob, Removals, TakenRemoval } from '../ports.js';
import { unlinkDurably, writeFileDurably } from './durable-fs.js';
import { retryDelay } from './retry-policy.js';

interface Record {
  readonly v: 1;
  readonly rid: string;
  readonly job: DeleteJob;
}

interface Entry {
  readonly rec: Record;
  running: boolean;
  tries: number;
  retryAt: number;
  /** The removal of a folder above it, which removes it too: it does not run on its own. */
  coveredBy?: Entry | undefined;
  readonly done: Promise<void>;
  finish: () => void;
}

export interface DeleteQueueOptions {
  readonly journalDir: string;
  readonly logger: Logger;
  /** Removes the entry on Girder; resolves when it is gone (an entry already gone resolves too). */
  readonly remove: (job: DeleteJob) => Promise<void>;
  /** The removal ended (done, or given up on: the entry shows again). */
  readonly onEnded?: (job: DeleteJob, removed: boolean) => void;
  /** Removals at once (default 8). */
  readonly concurrency?: number;
  /**
   * How long a removal waits before it starts (default 500 ms): `rm -r` and git gc remove a
   * directory right after its files, and the directory's recursive delete covers the removals
   * still waiting instead of one DELETE each.
   */
  readonly holdMs?: number;
  readonly retryDelayMs?: { min: number; max: number };
}

export class DeleteQueue implements Removals {
  private readonly entries: Entry[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly concurrency: number;
  private readonly holdMs: number;
  private readonly retryDelayMs: { min: number; max: number };
  private wakeTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: DeleteQueueOptions) {
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.holdMs = Math.max(0, opts.holdMs ?? 500);
    this.retryDelayMs = opts.retryDelayMs ?? { min: 1000, max: 60_000 };
  }

  /** Read the removals an earlier run journaled and queue them again. Resolves with them. */
  async start(): Promise<DeleteJob[]> {
    await mkdir(this.opts.journalDir, { recursive: true, mode: 0o700 });
    const jobs: DeleteJob[] = [];
    for (const name of (await readdir(this.opts.journalDir)).sort()) {
      const file = join(this.opts.journalDir, name);
      if (!name.endsWith('.json')) {
        if (name.endsWith('.tmp')) await unlink(file).catch(() => undefined);
        continue;
      }
      try {
        const rec = JSON.parse(await readFile(file, 'utf8')) as Record;
        if (rec.v !== 1 || typeof rec.job?.id !== 'string') throw new Error('not a removal record');
        this.add(rec);
        jobs.push(rec.job);
      } catch (err) {
        this.opts.logger.warn({ file, err: errorMessage(err) }, 'unreadable removal record dropped');
        await unlink(file).catch(() => undefined);
      }
    }
    if (jobs.length > 0) this.opts.logger.info({ removals: jobs.length }, 'resuming removals from the journal');
    this.schedule();
    return jobs;
  }

  /** Journal a removal (durably) and queue it. */
  async enqueue(job: DeleteJob): Promise<void> {
    if (this.closed) throw new Error('the removal queue is closed');
    const rec: Record = { v: 1, rid: `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`, job };
    await writeFileDurably(this.fileOf(rec), JSON.stringify(rec));
    this.add(rec, Date.now() + this.holdMs);
    this.schedule();
  }

  /**
   * Take the queued removals of entries under `dirPath` out of the queue (a recursive delete of the
   * directory makes them pointless), once those already running ended. Resolves with the jobs taken,
   * whose journal records stay until `done` (the directory is gone: they are too) or `restore` (it
   * is not: they go back in the queue).
   */
  async takeUnder(dirPath: string): Promise<TakenRemoval[]> {
    const under = (e: Entry): boolean => e.rec.job.path.startsWith(dirPath === '/' ? '/' : `${dirPath}/`);
    await Promise.all(this.entries.filter((e) => under(e) && e.running).map((e) => e.done));
    const taken = this.entries.filter((e) => under(e) && !e.running);
    for (const e of taken) this.entries.splice(this.entries.indexOf(e), 1);
    return taken.map((e) => ({
      job: e.rec.job,
      done: () => this.end(e, true),
      restore: () => {
        this.entries.push(e);
        this.schedule();
      },
    }));
  }

  /** Resolves once no removal of `path` (or under it) is queued: something new is about to take its name. */
  async settled(path: string): Promise<void> {
    const pending = this.entries.filter((e) => e.rec.job.path === path || e.rec.job.path.startsWith(`${path}/`));
    for (const e of pending) {
      e.retryAt = 0;
      coveringRoot(e).retryAt = 0;
    }
    if (pending.length > 0) this.schedule();
    await Promise.all(pending.map((e) => e.done));
  }

  /** Try the waiting removals now (Girder is back, a new login, SIGHUP). */
  retryNow(): void {
    for (const e of this.entries) e.retryAt = 0;
    this.schedule();
  }

  get pending(): number {
    return this.entries.length;
  }

  /** Wait until no removal is left, or the timeout passes. True when none is left. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.entries.length > 0 && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.race(this.entries.map((e) => e.done)), new Promise((r) => { timer = setTimeout(r, left); })]);
      clearTimeout(timer);
    }
    return this.entries.length === 0;
  }

  /** Stop; journaled removals run again at the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.wakeTimer);
    await Promise.allSettled([...this.running]);
    if (this.entries.length > 0) {
      this.opts.logger.info({ removals: this.entries.length, journal: this.opts.journalDir }, 'removals pending, journaled; they run at the next start');
    }
  }

  private add(rec: Record, retryAt = 0): void {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => { finish = resolve; });
    const entry: Entry = { rec, running: false, tries: 0, retryAt, done, finish };
    if (rec.job.kind === 'folder') {
      // A folder's removal is recursive: the removals still waiting under it end with it.
      const under = `${rec.job.path}/`;
      for (const c of this.entries) if (!c.running && c.coveredBy === undefined && c.rec.job.path.startsWith(under)) c.coveredBy = entry;
    }
    this.entries.push(entry);
  }

  private schedule(): void {
    if (this.closed) return;
    const now = Date.now();
    let wake = Infinity;
    for (const e of this.entries) {
      if (this.running.size >= this.concurrency) break;
      if (e.running || e.coveredBy !== undefined) continue;
      if (e.retryAt > now) {
        wake = Math.min(wake, e.retryAt);
        continue;
      }
      const run: Promise<void> = this.runOne(e).finally(() => {
        this.running.delete(run);
        this.schedule();
      });
      this.running.add(run);
    }
    clearTimeout(this.wakeTimer);
    if (wake !== Infinity) this.wakeTimer = setTimeout(() => this.schedule(), Math.max(0, wake - now) + 5);
  }

  private async runOne(e: Entry): Promise<void> {
    e.running = true;
    e.tries++;
    const { job } = e.rec;
    // What it covers, also through the folders under it (`rm -r` of a tree)
    const covered = this.entries.filter((c) => coveringRoot(c) === e && c !== e);
    try {
      await this.opts.remove(job);
      for (const c of covered) await this.end(c, true);
      await this.end(e, true);
    } catch (err) {
      for (const c of covered) if (c.coveredBy === e) c.coveredBy = undefined; // on their own again
      if (this.closed) return;
      if (!canGoAway(err)) {
        this.opts.logger.warn({ path: job.path, err: errorMessage(err) }, 'Girder refused the removal; the entry shows again');
        await this.end(e, false);
        return;
      }
      const delay = retryDelay(e.tries, this.retryDelayMs);
      if (e.tries === 1 || e.tries % 10 === 0) {
        this.opts.logger.warn({ path: job.path, err: errorMessage(err), retryInMs: delay }, 'removal on Girder failed; trying again');
      }
      e.retryAt = Date.now() + delay;
    } finally {
      e.running = false;
    }
  }

  private async end(e: Entry, removed: boolean): Promise<void> {
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
    await unlinkDurably(this.fileOf(e.rec)).catch((err: unknown) => {
      this.opts.logger.warn({ path: e.rec.job.path, err: errorMessage(err) }, 'could not remove a finished removal from the journal');
    });
    try {
      this.opts.onEnded?.(e.rec.job, removed);
    } finally {
      e.finish();
    }
  }

  private fileOf(rec: Record): string {
    return join(this.opts.journalDir, `${rec.rid}.json`);
  }
}

/** The removal that will do this one: the outermost folder removal covering it, or itself. */
function coveringRoot(e: Entry): Entry {
  let root = e;
  while (root.coveredBy !== undefined) root = root.coveredBy;
  return root;
}

/** A removal refused for a reason that can pass: the server away or failing, credentials refused. */
function canGoAway(err: unknown): boolean {
  if (!(err instanceof GirderError)) return true;
  return isTransient(err) || err.kind === 'auth';
}
