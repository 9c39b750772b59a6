export interface CacheStats {
  /** read() calls served without waiting for the store. */
  readonly hits: number;
  /** read() calls that waited for bytes from the store. */
  readonly misses: number;
  /** Bytes of blocks stored on disk. */
  readonly bytesCached: number;
  readonly maxBytes: number;
  /** Bytes received from the store (demand reads and read-ahead). */
  readonly bytesFetched: number;
}

/** What the readers of the cache counted (for `status` and the tests). */
export class ReadCounters {
  private hits = 0;
  private misses = 0;
  private fetched = 0;

  recordRead(hit: boolean): void {
    if (hit) this.hits++;
    else this.misses++;
  }

  recordFetched(bytes: number): void {
    this.fetched += bytes;
  }

  stats(bytesCached: number, maxBytes: number): CacheStats {
    return { hits: this.hits, misses: this.misses, bytesCached, maxBytes, bytesFetched: this.fetched };
  }
}
