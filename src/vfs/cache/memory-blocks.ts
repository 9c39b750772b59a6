import type { Slab } from './slab-pool.js';

interface MemoryBlock {
  readonly data: Buffer;
  readonly slab: Slab;
}

/**
 * Recently fetched or loaded blocks kept in memory, so the many small kernel reads that follow a
 * fetch do not go to disk. Bounded by bytes; the least recently used block goes first. Each block
 * holds a reference on the slab it lives in.
 */
export class MemoryBlocks {
  private readonly blocks = new Map<string, MemoryBlock>();
  private bytes = 0;

  constructor(private maxBytes: number) {}

  /** Raise the bound (a reader with a large read-ahead window needs room for it). */
  ensureCapacity(bytes: number): void {
    if (bytes > this.maxBytes) this.maxBytes = bytes;
  }

  get(key: string): Buffer | undefined {
    const block = this.blocks.get(key);
    if (block === undefined) return undefined;
    this.blocks.delete(key);
    this.blocks.set(key, block);
    return block.data;
  }

  /**
   * Like get(), but the block keeps its place: a sequential reader is done with a block once past
   * it, and must not push out the blocks fetched ahead of it, which would then be older.
   */
  peek(key: string): Buffer | undefined {
    return this.blocks.get(key)?.data;
  }

  has(key: string): boolean {
    return this.blocks.has(key);
  }

  set(key: string, data: Buffer, slab: Slab): void {
    this.delete(key);
    slab.retain();
    this.blocks.set(key, { data, slab });
    this.bytes += data.length;
    for (const oldest of this.blocks.keys()) {
      if (this.bytes <= this.maxBytes || this.blocks.size <= 1) break;
      this.delete(oldest);
    }
  }

  delete(key: string): void {
    const block = this.blocks.get(key);
    if (block === undefined) return;
    this.blocks.delete(key);
    this.bytes -= block.data.length;
    block.slab.release();
  }

  /** Drop every block whose key starts with `prefix`. */
  deletePrefix(prefix: string): void {
    for (const key of [...this.blocks.keys()]) if (key.startsWith(prefix)) this.delete(key);
  }

  clear(): void {
    for (const key of [...this.blocks.keys()]) this.delete(key);
  }
}
