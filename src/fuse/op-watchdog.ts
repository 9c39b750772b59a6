/**
 * Every FUSE request gets an answer in bounded time. A request the kernel sent is a process asleep
 * in `request_wait_answer`, which not even SIGKILL can end: an operation that passes its bound is
 * logged (what it is, and what the daemon is waiting on) and answered EIO, whatever it waits for.
 * The work itself may still finish later; the answer does not wait for it.
 */
import type { Logger } from '../log.js';
import { EIO } from './errno.js';

export interface OpBounds {
  /** How long an operation may go without progress before it is answered EIO. */
  readonly boundMs: number;
  /** How often overdue operations are looked for (default 500 ms). */
  readonly sweepMs?: number;
  /**
   * A counter that grows while work on `path` moves bytes (a file filled from Girder, an upload
   * sent), or NO_PROGRESS: an operation waiting on a transfer that progresses is not overdue.
   */
  readonly progressOf?: (path: string) => number;
  /** What the daemon is waiting on for `path`, for the log line of an overdue operation. */
  readonly describe?: (path: string) => Record<string, unknown>;
}

/** One operation waiting for its answer. */
interface Pending {
  readonly op: string;
  readonly path: string;
  readonly detail: Record<string, unknown> | undefined;
  readonly startedAt: number;
  deadline: number;
  /** Waits on a transfer whose progress (progressOf) extends the deadline. */
  readonly transfers: boolean;
  progress: number;
  readonly answer: (code: number) => void;
}

/** progressOf's answer when nothing transfers for the path. */
export const NO_PROGRESS = -1;

export interface PendingOp {
  readonly op: string;
  readonly path: string;
  readonly ageMs: number;
}

export class OpWatchdog {
  private readonly pending = new Set<Pending>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly bounds: OpBounds, private readonly logger: Logger) {}

  /**
   * Watch an operation until the returned function is called; `answer` is how to answer it EIO if
   * it overruns. `transfers`: it may wait on a transfer (a fill, an upload), whose progress counts.
   */
  track(op: string, path: string, detail: Record<string, unknown> | undefined, answer: (code: number) => void, transfers = false): () => void {
    const now = Date.now();
    const progress = transfers ? this.bounds.progressOf?.(path) ?? NO_PROGRESS : NO_PROGRESS;
    const entry: Pending = { op, path, detail, startedAt: now, deadline: now + this.bounds.boundMs, transfers, progress, answer };
    this.pending.add(entry);
    this.timer ??= this.startSweeping();
    return () => {
      this.pending.delete(entry);
    };
  }

  /** Operations waiting for an answer now, oldest first. */
  list(): PendingOp[] {
    const now = Date.now();
    return [...this.pending].map((p) => ({ op: p.op, path: p.path, ageMs: now - p.startedAt }));
  }

  /** Answer every overdue operation with EIO. Exposed for tests; runs on a timer otherwise. */
  sweep(now = Date.now()): void {
    for (const p of this.pending) {
      if (now < p.deadline) continue;
      if (p.transfers) {
        const progress = this.bounds.progressOf?.(p.path) ?? NO_PROGRESS;
        if (progress !== p.progress) {
          p.progress = progress;
          p.deadline = now + this.bounds.boundMs;
          continue;
        }
      }
      this.pending.delete(p);
      this.logger.warn({
        op: p.op, path: p.path, ...p.detail, waitedMs: now - p.startedAt, boundMs: this.bounds.boundMs,
        waitingFor: this.bounds.describe?.(p.path),
      }, 'operation passed its time bound; answered EIO');
      p.answer(EIO);
    }
    if (this.pending.size === 0) this.stopSweeping();
  }

  /** Stop the timer (operations still pending are left to their own answers). */
  close(): void {
    this.stopSweeping();
  }

  private startSweeping(): NodeJS.Timeout {
    const timer = setInterval(() => this.sweep(), this.bounds.sweepMs ?? 500);
    timer.unref();
    return timer;
  }

  private stopSweeping(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
