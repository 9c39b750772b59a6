import { FsError } from '../../errors.js';
import type { BlockCache } from './block-cache.js';
import type { CachedReader, ReadProgress } from './cached-reader.js';
import type { ReadSession } from './types.js';
import type { VersionFile } from './version-file.js';

/**
 * How far a read may start from where the previous ones ended and still count as sequential: the
 * kernel keeps several reads of one file in flight, and they may arrive out of order.
 */
const SEQUENTIAL_SLACK = 2 * 1024 * 1024;

/**
 * One open file's reads. Sequential reads double a read-ahead window (1 block up to the reader's
 * `readAheadBlocks`) and keep it filled with range requests; a seek resets it, and a read that is
 * not sequential fetches only the blocks it covers.
 */
export class ReadSessionImpl implements ReadSession {
  private closed = false;
  /** End of the furthest read of the current sequential run (-1 before the first read). */
  private lastEnd = -1;
  /** Read-ahead window in blocks; 0 after a seek. */
  private window = 0;
  /** Blocks before this index were already requested by read-ahead. */
  private aheadUntil = 0;

  constructor(
    private readonly reader: CachedReader,
    private readonly cache: BlockCache,
    private readonly vf: VersionFile,
  ) {}

  async read(into: Buffer, length: number, position: number): Promise<number> {
    if (this.closed) throw new FsError('EBADF', 'read of a closed file');
    if (!Number.isSafeInteger(position) || position < 0) throw new FsError('EINVAL', `bad read position ${position}`);
    const vf = this.vf;
    const want = Math.min(length, into.length);
    if (want <= 0 || position >= vf.size) return 0;
    const end = Math.min(vf.size, position + want);
    const bs = vf.blockSize;
    const first = Math.floor(position / bs);
    const last = Math.floor((end - 1) / bs);
    const sequential = this.follow(position, end);
    if (sequential) this.readAhead(first);
    this.reader.fetchMissing(vf, first, last + 1, this.reader.requestBlocks);
    if (sequential) this.reader.preload(vf, last + 1);

    const progress: ReadProgress = { waited: false };
    let done = 0;
    for (let b = first; b <= last; b++) {
      const from = Math.max(position, b * bs);
      const to = Math.min(end, (b + 1) * bs);
      const n = await this.reader.copyBlock(vf, b, into, from - position, from - b * bs, to - from, sequential, progress);
      done += n;
      if (n < to - from) break;
    }
    this.cache.recordRead(!progress.waited);
    return done;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cache.release(this.vf);
  }

  /** Note a read; true when it continues the previous ones. */
  private follow(position: number, end: number): boolean {
    const sequential = this.lastEnd < 0
      ? position === 0
      : position >= this.lastEnd - SEQUENTIAL_SLACK && position <= this.lastEnd + SEQUENTIAL_SLACK;
    if (sequential) {
      this.window = Math.min(this.reader.readAheadBlocks, Math.max(1, this.window * 2));
      this.lastEnd = Math.max(this.lastEnd, end);
    } else {
      this.window = 0;
      this.aheadUntil = 0;
      this.lastEnd = end;
    }
    return sequential;
  }

  /**
   * Keep blocks [cur, cur + window) requested. New requests go out once at least half a window
   * (up to the largest request) is missing, so requests stay large.
   */
  private readAhead(cur: number): void {
    const vf = this.vf;
    const target = Math.min(vf.blockCount, cur + this.window);
    const start = Math.max(this.aheadUntil, cur);
    if (start >= target) return;
    const run = Math.max(1, Math.min(this.reader.requestBlocks, Math.floor(this.window / 2)));
    const urgent = start === cur;
    if (!urgent && target < vf.blockCount && target - start < run) return;
    if (!urgent && !this.reader.canPrefetch) return;
    this.aheadUntil = target;
    this.reader.fetchMissing(vf, start, target, run);
  }
}
