import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { LocalFile } from './local-file.js';
import type { UploadTarget } from './ports.js';

/** Who holds a local copy: it lives while any of these does. */
interface Use {
  /** Handles open on it (readers and writers), and operations holding it as a handle would. */
  users: number;
  /** Uploads handed off and not yet followed to their end. */
  uploads: number;
  /** Settles when every hand-off so far has ended (and its follow-ups are done). */
  lastUpload: Promise<unknown>;
}

/**
 * The files written here that are still open or uploading, by mount path: the one place that
 * adds, moves and drops their local copies, counts who uses each, and disposes of a copy once
 * nobody does. A copy unlinked while open leaves the table (or stays under libfuse's hidden name)
 * and lives on until its last user goes.
 */
export class OpenFiles {
  private readonly byPath = new Map<string, LocalFile>();
  private readonly uses = new Map<LocalFile, Use>();

  constructor(private readonly logger: Logger) {}

  get(path: string): LocalFile | undefined {
    return this.byPath.get(path);
  }

  has(path: string): boolean {
    return this.byPath.has(path);
  }

  /** Paths with a local copy (hidden names of files unlinked while open included). */
  get count(): number {
    return this.byPath.size;
  }

  /** Names of the local copies directly in directory `dirPath`, for its listing (unlinked ones never). */
  namesIn(dirPath: string): string[] {
    const names: string[] = [];
    for (const local of this.byPath.values()) {
      if (local.unlinked) continue; // unlinked while open: libfuse's hidden name, never listed
      const slash = local.path.lastIndexOf('/');
      const parent = slash === 0 ? '/' : local.path.slice(0, slash);
      if (parent === dirPath) names.push(local.path.slice(slash + 1));
    }
    return names;
  }

  /** The local copies anywhere below directory `dirPath`. */
  under(dirPath: string): LocalFile[] {
    return [...this.byPath.values()].filter((l) => l.path.startsWith(dirPath + '/'));
  }

  /** A new copy at its path (a file created here, an upload resumed after a restart). */
  add(local: LocalFile): void {
    this.byPath.set(local.path, local);
  }

  /**
   * The path's local copy: `started`, unless another open of the path made one while this one was
   * being made (both found none); then that one, and `started` is dropped. Call it with no wait
   * between it and acquire, or an upload finishing could dispose of the copy.
   */
  addUnlessTaken(started: LocalFile): LocalFile {
    const first = this.byPath.get(started.path);
    if (first !== undefined && first !== started) {
      void started.dispose();
      return first;
    }
    this.byPath.set(started.path, started);
    return started;
  }

  /** A handle (or an operation that holds the copy as one) starts using it. */
  acquire(local: LocalFile): void {
    this.use(local).users++;
  }

  /** A user is done with it; disposeIfIdle then lets it go when nobody else needs it. */
  release(local: LocalFile): void {
    this.use(local).users--;
  }

  /** Whether anything still uses it as a handle does. */
  inUse(local: LocalFile): boolean {
    return this.use(local).users > 0;
  }

  /**
   * An upload of the copy was handed off: it stays (and serves the path) until `outcome` settles.
   * uploadsSettled then waits for it and for every earlier one: an earlier upload may still be
   * ending (Girder has its file, the copy does not know yet) after a newer one was dropped.
   */
  trackUpload<T>(local: LocalFile, outcome: Promise<T>): Promise<T> {
    const use = this.use(local);
    use.uploads++;
    const tracked = outcome.finally(() => {
      use.uploads--;
      void this.disposeIfIdle(local);
    });
    use.lastUpload = Promise.allSettled([use.lastUpload, tracked]);
    return tracked;
  }

  /** Whether an upload handed off is not yet followed to its end. */
  uploading(local: LocalFile): boolean {
    return this.use(local).uploads > 0;
  }

  /** Settles when every upload handed off has ended (whether it reached Girder or not). Never rejects. */
  uploadsSettled(local: LocalFile): Promise<unknown> {
    return this.use(local).lastUpload;
  }

  /**
   * Let the copy go when nothing uses it, no upload of it is pending, and it holds nothing still
   * to upload (changes that failed to be written are dropped, and said so).
   */
  async disposeIfIdle(local: LocalFile): Promise<void> {
    const use = this.use(local);
    if (use.users > 0 || use.uploads > 0) return;
    if (local.dirty && !local.unlinked && local.failure === undefined) return;
    if (local.failure !== undefined && !local.unlinked) {
      this.logger.warn({ path: local.path, err: errorMessage(local.failure) }, 'writing the local copy failed: its changes are dropped, nothing of them is uploaded');
    }
    if (this.byPath.get(local.path) === local) this.byPath.delete(local.path);
    this.uses.delete(local);
    await local.dispose();
  }

  /** The copy's file moved to `to` (with a new upload target, when it is not on Girder yet). */
  move(local: LocalFile, to: string, target?: UploadTarget): void {
    this.drop(local);
    local.moveTo(to, target);
    this.byPath.set(to, local);
  }

  /** A directory moved: the copies below it move with it (and keep writing to the same Girder ids). */
  moveUnder(from: string, to: string): void {
    for (const local of this.under(from)) this.move(local, to + local.path.slice(from.length));
  }

  /** The file was unlinked (or replaced by a rename): gone from the table; its users keep the copy. */
  unlink(local: LocalFile): void {
    local.markUnlinked();
    this.drop(local);
  }

  /**
   * Unlinked while open, as libfuse does it: the copy stays, under the hidden name libfuse gave it,
   * until that name is unlinked at the last close (forgetHidden).
   */
  hide(local: LocalFile, hiddenPath: string): void {
    local.markUnlinked();
    this.move(local, hiddenPath);
  }

  /** libfuse unlinks the hidden name of a file unlinked while open: its last close. */
  forgetHidden(hiddenPath: string): void {
    if (this.byPath.get(hiddenPath)?.unlinked === true) this.byPath.delete(hiddenPath);
  }

  /** The copy's state, for the log line of an operation given up on. */
  describe(local: LocalFile): Record<string, unknown> {
    const use = this.use(local);
    return { ...local.describe(), openCount: use.users, pendingUploads: use.uploads };
  }

  private drop(local: LocalFile): void {
    if (this.byPath.get(local.path) === local) this.byPath.delete(local.path);
  }

  private use(local: LocalFile): Use {
    let use = this.uses.get(local);
    if (use === undefined) {
      use = { users: 0, uploads: 0, lastUpload: Promise.resolve(undefined) };
      this.uses.set(local, use);
    }
    return use;
  }
}
