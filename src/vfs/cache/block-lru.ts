import type { BlockEntry } from './version-file.js';

const MiB = 1024 * 1024;
/** Eviction frees this much beyond what is needed (at most 5% of the cap), so it runs in batches. */
const EVICT_SLACK_MAX = 256 * MiB;

/**
 * The blocks on disk, least recently used first, and their bytes against the cap: whether a
 * block fits, and which blocks eviction takes to make room (the oldest whose file is not pinned).
 */
export class BlockLru {
  private readonly order = new Set<BlockEntry>();
  private used = 0;
  /** Bytes of blocks being written. */
  private reserved = 0;
  /** The cap in force: lowered when the disk turned out to be full. */
  private limit: number;
  /** The last eviction found only pinned blocks; nothing to try until a pin or a block goes. */
  private onlyPinned = false;

  constructor(maxBytes: number, private readonly blockSize: number) {
    this.limit = maxBytes;
  }

  /** Bytes of the blocks on disk. */
  get bytes(): number {
    return this.used;
  }

  get overCap(): boolean {
    return this.used > this.limit;
  }

  /** Least recently used first. */
  entries(): IterableIterator<BlockEntry> {
    return this.order.values();
  }

  /** A block landed on disk: it is the most recently used. */
  add(e: BlockEntry): void {
    this.order.add(e);
    this.used += e.bytes;
  }

  /** A block left the disk (evicted, or its version dropped). */
  remove(e: BlockEntry): void {
    this.order.delete(e);
    this.used -= e.bytes;
  }

  /** A block was used: it becomes the most recently used. */
  touch(e: BlockEntry): void {
    this.order.delete(e);
    this.order.add(e);
  }

  /** Bytes of a write under way count against the cap until it lands or fails. */
  reserve(bytes: number): void {
    this.reserved += bytes;
  }

  unreserve(bytes: number): void {
    this.reserved -= bytes;
  }

  /** A pin or a block went: eviction may find something to take again. */
  unblock(): void {
    this.onlyPinned = false;
  }

  /** The disk is full: the cap becomes what is cached now. */
  capAtUsage(): void {
    this.limit = Math.min(this.limit, this.used);
  }

  /**
   * Evict unpinned blocks, oldest first, until `need` more bytes fit under the cap (with some
   * slack, so eviction runs in batches). `evict` takes the block off the disk (and may take more
   * of its file). False when the room could not be made.
   */
  makeRoom(need: number, evict: (e: BlockEntry) => void): boolean {
    const fits = (): boolean => this.used + this.reserved + need <= this.limit;
    if (fits()) return true;
    if (this.onlyPinned) return false;
    const slack = Math.floor(Math.min(this.limit * 0.05, EVICT_SLACK_MAX) / this.blockSize) * this.blockSize;
    const target = this.limit - need - slack;
    for (const e of this.order) {
      if (this.used + this.reserved <= target) break;
      if (e.vf.pinned || !e.vf.isOnDisk(e.idx)) continue;
      evict(e);
    }
    if (fits()) return true;
    this.onlyPinned = true; // every block left is pinned (or still being written)
    return false;
  }
}
