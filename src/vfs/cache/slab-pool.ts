/**
 * Reusable buffers for range requests and disk loads. Fresh multi-MiB buffers at hundreds of MB/s
 * would leave RSS at the mercy of the garbage collector and malloc; a slab returns to the pool when
 * its last user (request, memory block, pending disk write) lets go.
 */
export class Slab {
  private refs = 1;
  private reusable = true;

  constructor(readonly buf: Buffer, private readonly pool: SlabPool) {}

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0 && this.reusable) this.pool.recycle(this.buf);
  }

  /** Never reuse this buffer (a failed request might still write into it). */
  discard(): void {
    this.reusable = false;
  }
}

export class SlabPool {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;

  /** `sizes`: the slab sizes handed out (a request takes the smallest that fits). */
  constructor(private readonly sizes: readonly number[], private readonly keepBytes: number) {}

  /** A slab of at least `bytes` (a plain buffer when larger than every size). */
  take(bytes: number): Slab {
    const size = this.sizes.find((s) => s >= bytes) ?? bytes;
    const list = this.free.get(size);
    const buf = list?.pop();
    if (buf !== undefined) {
      this.freeBytes -= buf.length;
      return new Slab(buf, this);
    }
    return new Slab(Buffer.allocUnsafeSlow(size), this);
  }

  recycle(buf: Buffer): void {
    if (!this.sizes.includes(buf.length)) return;
    // Later, not now: a reader resumed by the same settled promise may still be copying from it.
    setImmediate(() => {
      if (this.freeBytes + buf.length > this.keepBytes) return;
      const list = this.free.get(buf.length) ?? [];
      list.push(buf);
      this.free.set(buf.length, list);
      this.freeBytes += buf.length;
    }).unref();
  }

  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }
}
