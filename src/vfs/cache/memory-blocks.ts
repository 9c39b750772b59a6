import type { Slab } from './slab-pool.js';

interface MemoryBlock {
  readonly data: Buffer;
  readonly slab: Slab;
}

/**
 * Recently fetched or loaded blocks kept in memory, so the many small kernel reads that follow a
 * fetch do not go to disk. Bounded by the bytes of the slabs the blocks keep alive (a block holds
 * its whole slab, which may be larger than the block: a slab counts once, whatever the number of
 * its blocks here); the least recently used block goes first.
 */
export class MemoryBlocks {
  private readonly blocks = new Map<string, MemoryBlock>();
  /** Blocks held here per slab. */
  private readonly slabBlocks = new Map<Slab, number>();
  private bytes = 0;

  constructor(private maxBytes: number) {}

  /** Raise the bound (a reader with a large read-ahead window needs room for it). */
  ensureCapacity(bytes: number): void {
    if (bytes > this.maxBytes) this.maxBytes = bytes;
  }

  /** Bytes of the slabs the blocks here keep alive. */
  get heldBytes(): number {
    return this.bytes;
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
    const held = this.slabBlocks.get(slab) ?? 0;
    if (held === 0) this.bytes += slab.buf.length;
    this.slabBlocks.set(slab, held + 1);
    for (const oldest of this.blocks.keys()) {
      if (this.bytes <= this.maxBytes || this.blocks.size <= 1) break;
      this.delete(oldest);
    }
  }

  delete(key: string): void {
    const block = this.blocks.get(key);
    if (block === undefined) return;
    this.blocks.delete(key);
    const held = this.slabBlocks.get(block.slab) ?? 1;
    if (held <= 1) {
      this.slabBlocks.delete(block.slab);
      this.bytes -= block.slab.buf.length;
    } else this.slabBlocks.set(block.slab, held - 1);
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
