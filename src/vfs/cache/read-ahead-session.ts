import { FsError } from '../../errors.js';
import type { ReadSession } from '../ports.js';
import type { BlockCache } from './block-cache.js';
import type { BlockStream } from './block-stream.js';
import type { VersionFile } from './version-file.js';

/**
 * How far a read may start from where the previous ones ended and still count as sequential: the
 * kernel keeps several reads of one file in flight, and they may arrive out of order.
 */
const SEQUENTIAL_SLACK = 2 * 1024 * 1024;
/** Read-ahead windows of this many blocks (or the largest window, if smaller) are streamed. */
const STREAM_WINDOW_BLOCKS = 8;

/** Whether a read had to wait for the store (for the hit/miss counters). */
export interface ReadProgress {
  waited: boolean;
}

/** What a session asks of the reader that opened it (CachedReader): fetches, streams, block copies. */
export interface ReadAheadHost {
  /** Largest read-ahead window, in blocks. */
  readonly readAheadBlocks: number;
  /** A file this small is fetched whole by its first read. */
  readonly wholeFileBytes: number;
  /** Blocks in the largest range request. */
  readonly requestBlocks: number;
  /** Read-ahead may add requests (the memory of all sessions' windows together is bounded). */
  readonly canPrefetch: boolean;
  /** Fetch the blocks of [from, to) that are not available, in runs of at most `maxRun` blocks. */
  fetchMissing(vf: VersionFile, from: number, to: number, maxRun: number): void;
  /** A stream of the first run of missing blocks from `from` (starting before `limit`); null when none. */
  openStream(vf: VersionFile, from: number, limit: number): BlockStream | null;
  /** Start loading the disk blocks from `idx` on into memory. */
  preload(vf: VersionFile, idx: number): void;
  /** Copy part of block `idx` into `into` at once, if it is in memory: the bytes copied, else undefined. */
  copyBlockNow(vf: VersionFile, idx: number, into: Buffer, intoOffset: number, blockOffset: number, length: number, wholeBlock: boolean): number | undefined;
  /** Copy part of block `idx` into `into`: the bytes copied. */
  copyBlock(
    vf: VersionFile, idx: number, into: Buffer, intoOffset: number, blockOffset: number, length: number,
    wholeBlock: boolean, progress: ReadProgress,
  ): Promise<number>;
}

/**
 * One open file's reads. Sequential reads double a read-ahead window (1 block up to the reader's
 * `readAheadBlocks`) and keep it filled: small windows with range requests, then with one stream
 * that follows the reader (range requests again when too many streams are open). A seek resets
 * the window and closes the stream; a read that is not sequential fetches only the blocks it covers.
 */
export class ReadAheadSession implements ReadSession {
  private closed = false;
  /** End of the furthest read of the current sequential run (-1 before the first read). */
  private lastEnd = -1;
  /** Read-ahead window in blocks; 0 after a seek. */
  private window = 0;
  /** Blocks before this index were already requested by read-ahead. */
  private aheadUntil = 0;
  /** The stream filling the read-ahead window, while it claims blocks. */
  private stream: BlockStream | null = null;

  constructor(
    private readonly reader: ReadAheadHost,
    private readonly cache: Pick<BlockCache, 'recordRead' | 'release'>,
    private readonly vf: VersionFile,
  ) {}

  async read(into: Buffer, length: number, position: number): Promise<number> {
    if (this.closed) throw new FsError('EBADF', 'read of a closed file');
    if (!Number.isSafeInteger(position) || position < 0) throw new FsError('EINVAL', `bad read position ${position}`);
    const end = this.endOf(into, length, position);
    if (end <= position) return 0;
    const sequential = this.follow(position, end);
    this.fetchFor(position, end, sequential);

    const progress: ReadProgress = { waited: false };
    let done = 0;
    for (const part of this.parts(position, end)) {
      const n = await this.reader.copyBlock(this.vf, part.block, into, part.intoOffset, part.blockOffset, part.length, sequential, progress);
      done += n;
      if (n < part.length) break;
    }
    this.cache.recordRead(!progress.waited);
    return done;
  }

  readNow(into: Buffer, length: number, position: number): number | undefined {
    if (this.closed || !Number.isSafeInteger(position) || position < 0) return undefined;
    const end = this.endOf(into, length, position);
    if (end <= position) return 0;
    const sequential = this.continues(position);
    let done = 0;
    for (const part of this.parts(position, end)) {
      const n = this.reader.copyBlockNow(this.vf, part.block, into, part.intoOffset, part.blockOffset, part.length, sequential);
      if (n === undefined) return undefined; // what was copied so far, `read` copies again
      done += n;
      if (n < part.length) break;
    }
    // Bookkeeping only once the read is sure to be served here, so `read` would find it untouched.
    this.follow(position, end);
    this.fetchFor(position, end, sequential);
    this.cache.recordRead(true);
    return done;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropStream();
    this.cache.release(this.vf);
  }

  /** End of a read of `length` bytes at `position` into `into`, within the file. */
  private endOf(into: Buffer, length: number, position: number): number {
    const want = Math.min(length, into.length);
    if (want <= 0 || position >= this.vf.size) return position;
    return Math.min(this.vf.size, position + want);
  }

  /** The blocks of [position, end), each with where its bytes go. */
  private *parts(position: number, end: number): Generator<{ block: number; intoOffset: number; blockOffset: number; length: number }> {
    const bs = this.vf.blockSize;
    for (let b = Math.floor(position / bs); b <= Math.floor((end - 1) / bs); b++) {
      const from = Math.max(position, b * bs);
      const to = Math.min(end, (b + 1) * bs);
      yield { block: b, intoOffset: from - position, blockOffset: from - b * bs, length: to - from };
    }
  }

  /** Start what a read of [position, end) needs fetched: its own blocks, read-ahead, preloads. */
  private fetchFor(position: number, end: number, sequential: boolean): void {
    const vf = this.vf;
    const first = Math.floor(position / vf.blockSize);
    const last = Math.floor((end - 1) / vf.blockSize);
    if (vf.size <= this.reader.wholeFileBytes) this.reader.fetchMissing(vf, 0, vf.blockCount, this.reader.requestBlocks);
    else if (sequential) this.readAhead(first);
    this.reader.fetchMissing(vf, first, last + 1, this.reader.requestBlocks);
    if (sequential) this.reader.preload(vf, last + 1);
  }

  /** Whether a read at `position` continues the previous ones. */
  private continues(position: number): boolean {
    return this.lastEnd < 0
      ? position === 0
      : position >= this.lastEnd - SEQUENTIAL_SLACK && position <= this.lastEnd + SEQUENTIAL_SLACK;
  }

  /** Note a read; true when it continues the previous ones. */
  private follow(position: number, end: number): boolean {
    const sequential = this.continues(position);
    if (sequential) {
      this.window = Math.min(this.reader.readAheadBlocks, Math.max(1, this.window * 2));
      this.lastEnd = Math.max(this.lastEnd, end);
    } else {
      this.window = 0;
      this.aheadUntil = 0;
      this.lastEnd = end;
      this.dropStream();
    }
    return sequential;
  }

  private dropStream(): void {
    this.stream?.close();
    this.stream = null;
  }

  /**
   * Keep blocks [cur, cur + window) requested. New requests go out once at least half a window
   * (up to the largest request) is missing, so requests stay large.
   */
  private readAhead(cur: number): void {
    const vf = this.vf;
    const target = Math.min(vf.blockCount, cur + this.window);
    if (this.streamAhead(cur, target)) return;
    const start = Math.max(this.aheadUntil, cur);
    if (start >= target) return;
    const run = Math.max(1, Math.min(this.reader.requestBlocks, Math.floor(this.window / 2)));
    const urgent = start === cur;
    if (!urgent && target < vf.blockCount && target - start < run) return;
    if (!urgent && !this.reader.canPrefetch) return;
    this.aheadUntil = target;
    this.reader.fetchMissing(vf, start, target, run);
  }

  /**
   * Keep blocks [cur, target) claimed by this reader's stream (opened once the window is large
   * enough). False when range requests must do it: no stream could be opened, or the stream has
   * claimed every block up to its end (the end of the file, or a run of blocks cached or under way
   * for another reader follows: the next read opens a stream after it).
   */
  private streamAhead(cur: number, target: number): boolean {
    let s = this.stream;
    if (s === null && this.window >= Math.min(STREAM_WINDOW_BLOCKS, this.reader.readAheadBlocks)) {
      s = this.stream = this.reader.openStream(this.vf, Math.max(this.aheadUntil, cur), target);
    }
    if (s === null) return false;
    s.advance(target);
    if (s.active) return true;
    // Finished claiming (it delivers what it claimed by itself); or it was closed after idling, or
    // failed, and released its claims: what the reader needs is fetched anew.
    if (s.claimedUntil >= s.end) this.aheadUntil = Math.max(this.aheadUntil, s.end);
    this.stream = null;
    return false;
  }
}
