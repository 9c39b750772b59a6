import { errorMessage } from '../../errors.js';
import type { BlockLru } from './block-lru.js';
import type { IndexSaver } from './index-saver.js';
import type { Slab } from './slab-pool.js';
import type { VersionFile } from './version-file.js';
import { errCode, type WarnOnce } from './warn-once.js';

const MiB = 1024 * 1024;
/** Fetched blocks waiting for their disk write; beyond this, new blocks are served but not cached. */
const MAX_PENDING_WRITE_BYTES = 16 * MiB;
/** After a full disk, stop trying to cache for this long. */
const FULL_DISK_PAUSE_MS = 5_000;

/**
 * Which fetched blocks are written to disk, and their writes: a block is admitted when it is
 * whole, new, and room can be made for it; the bytes waiting for their write are bounded. A full
 * disk pauses caching for a while and lowers the cap to what is cached.
 */
export class BlockAdmission {
  private pendingWriteBytes = 0;
  private pausedUntil = 0;

  constructor(
    private readonly blockSize: number,
    private readonly lru: BlockLru,
    private readonly index: IndexSaver,
    private readonly warn: WarnOnce,
    /** The cache directory, for the log of a full disk. */
    private readonly dir: string,
    /** Evict until `need` more bytes fit; false when they cannot. */
    private readonly makeRoom: (need: number) => boolean,
  ) {}

  /**
   * Keep fetched blocks on disk where there is room: `data` holds blocks `first`, `first + 1`, ...
   * back to back. Consecutive blocks go out in one write. Never fails: a block that cannot be
   * stored is just not cached.
   */
  store(vf: VersionFile, first: number, data: Buffer, slab: Slab): void {
    const bs = this.blockSize;
    const count = Math.ceil(data.length / bs);
    let runStart = -1;
    let runBytes = 0;
    const flush = (): void => {
      if (runStart >= 0) this.writeRun(vf, runStart, data.subarray((runStart - first) * bs, (runStart - first) * bs + runBytes), slab);
      runStart = -1;
      runBytes = 0;
    };
    for (let idx = first; idx < first + count; idx++) {
      const len = Math.min(bs, data.length - (idx - first) * bs);
      if (!this.admit(vf, idx, len)) {
        flush();
        continue;
      }
      if (runStart < 0) runStart = idx;
      runBytes += len;
      this.lru.reserve(len);
      this.pendingWriteBytes += len;
      vf.startWrite(idx);
    }
    flush();
  }

  /** Whether block `idx` (of `len` bytes) should and can be written now. */
  private admit(vf: VersionFile, idx: number, len: number): boolean {
    if (vf.dead || len <= 0 || len !== vf.blockLength(idx) || vf.isOnDisk(idx) || vf.isWriting(idx)) return false;
    if (this.pausedUntil > Date.now() || this.pendingWriteBytes + len > MAX_PENDING_WRITE_BYTES) return false;
    return this.makeRoom(len);
  }

  /** Write reserved blocks [first, ...) in one go; put them in the LRU when done. */
  private writeRun(vf: VersionFile, first: number, data: Buffer, slab: Slab): void {
    const bs = this.blockSize;
    const count = Math.ceil(data.length / bs);
    slab.retain();
    const done = (): void => {
      for (let idx = first; idx < first + count; idx++) vf.endWrite(idx);
      this.lru.unreserve(data.length);
      this.pendingWriteBytes -= data.length;
      slab.release();
    };
    vf.enqueue(() => vf.writeBlocks(first, data)).then(
      () => {
        done();
        if (vf.dead) return;
        for (let idx = first; idx < first + count; idx++) {
          const e = vf.land(idx, Math.min(bs, data.length - (idx - first) * bs));
          if (e !== undefined) this.lru.add(e);
        }
        if (!vf.pinned) this.lru.unblock();
        this.index.written(vf);
      },
      (err: unknown) => {
        done();
        this.writeFailed(err, vf);
      },
    );
  }

  private writeFailed(err: unknown, vf: VersionFile): void {
    const code = errCode(err);
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      this.pausedUntil = Date.now() + FULL_DISK_PAUSE_MS;
      this.lru.capAtUsage();
      this.warn.warn('ENOSPC', { dir: this.dir, bytesCached: this.lru.bytes }, 'cache disk is full: serving reads without caching them, cache cap lowered');
      return;
    }
    this.warn.warn(`write:${code}`, { err: errorMessage(err), file: vf.path }, 'cannot write a cache block; serving it without caching');
  }
}
