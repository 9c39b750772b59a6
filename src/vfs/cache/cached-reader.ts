import { FsError } from '../../errors.js';
import { kindOf } from '../../girder/girder-error.js';
import type { GirderStore } from '../../girder/store.js';
import type { Logger } from '../../log.js';
import type { DataReader, ReadSession, RemoteFile } from '../ports.js';
import type { BlockCache } from './block-cache.js';
import { BlockStream, StreamStalledError, type BlockStreamHost } from './block-stream.js';
import { ReadAheadSession, type ReadAheadHost, type ReadProgress } from './read-ahead-session.js';
import { SlabPool } from './slab-pool.js';
import type { PendingBlock, VersionFile } from './version-file.js';

export interface CachedReaderOptions {
  /** Largest read-ahead window, in blocks (default: READ_AHEAD_BYTES worth). */
  readAheadBlocks?: number;
  /** Largest single range request, in bytes (default REQUEST_BYTES, at least one block). */
  maxRequestBytes?: number;
  /**
   * Sequential readers streaming their read-ahead at once (default 4; 0: never stream). Each holds
   * a server connection, and a server thread while paused; past this, readers use range requests.
   */
  maxStreams?: number;
  /**
   * A file this small is fetched whole by its first read (default 1 MiB): one request, where the
   * kernel's 128 KiB reads and the read-ahead ramp take several round trips. 0: never.
   */
  wholeFileBytes?: number;
  /** How long reads of a file that got no answer fail at once (default NO_ANSWER_MEMORY_MS). */
  noAnswerMs?: number;
  /** A stream without reads for this long is closed (default 10 s). */
  streamIdleMs?: number;
  /**
   * A stream that lands no byte for this long while blocks wait on it fails them with EIO
   * (default 60 s). The store's own timeouts and retries come first: give them room.
   */
  streamStallMs?: number;
  logger: Logger;
}

const MiB = 1024 * 1024;
/**
 * How far a sequential reader's read-ahead runs ahead of it, and the largest range request. The
 * memory kept for fetched blocks follows from them (one window and one request, over all readers):
 * 16 and 8 MiB made that 25 MiB, and the bytes in flight as much again, most of the peaks of a
 * soak's RSS. 8 MiB ahead still covers a link's round trip many times over (a stream is one long
 * GET; range requests are sent before the previous one ends).
 */
const READ_AHEAD_BYTES = 8 * MiB;
const REQUEST_BYTES = 4 * MiB;
/** How far ahead of a sequential reader disk blocks are loaded into memory. */
const PRELOAD_BYTES = 4 * MiB;
const SMALLEST_SLAB_BYTES = 4096;
/** Streamed blocks are filled in slabs of this size, and written to disk a slab at a time. */
const STREAM_SLAB_BYTES = MiB;
/**
 * Idle slabs kept for reuse: enough for the slabs a stream cycles through; more would stay resident
 * while no one reads, and a fresh slab costs little once freed ones go back to the system (see
 * src/fuse/malloc-settings.ts).
 */
const POOL_KEEP_BYTES = 4 * MiB;
/** Longest stream, in bytes: a longer run of missing blocks takes several (bounds the scan for its end). */
const MAX_STREAM_BYTES = 4096 * MiB;
/**
 * After a fetch of a file got no answer within the timeout, reads of its blocks not cached fail at
 * once with that error for this long: the kernel reads a page again right after its read-ahead of
 * it failed, and that second read must not wait the whole timeout again, even on a busy machine
 * where it comes a while later.
 */
const NO_ANSWER_MEMORY_MS = 3000;

/**
 * Reads remote files through the block cache: memory, then disk, then one shared range request
 * per run of missing blocks. Sessions (one per open file, read-ahead-session.ts) decide what to
 * fetch ahead: with range requests, or with a stream (block-stream.ts) once a reader proves
 * sequential.
 */
export class CachedReader implements BlockStreamHost, ReadAheadHost, DataReader {
  readonly readAheadBlocks: number;
  readonly wholeFileBytes: number;
  /** Blocks in the largest range request. */
  readonly requestBlocks: number;
  readonly log: Logger;
  private readonly maxPrefetchBytes: number;
  private inflightBytes = 0;
  private readonly maxStreams: number;
  private readonly streamIdleMs: number;
  private readonly streamStallMs: number;
  private readonly noAnswerMs: number;
  private readonly streamSlabBlocks: number;
  private readonly maxStreamBlocks: number;
  /** Streams not ended yet. */
  private readonly streams = new Set<BlockStream>();
  /** Files whose last fetch got no answer in time: the error, and until when reads repeat it. */
  private readonly noAnswer = new WeakMap<VersionFile, { readonly err: Error; readonly until: number }>();

  constructor(
    private readonly store: GirderStore,
    readonly cache: BlockCache,
    opts: CachedReaderOptions,
  ) {
    const bs = cache.blockSize;
    this.readAheadBlocks = Math.max(1, Math.floor(opts.readAheadBlocks ?? Math.max(1, Math.round(READ_AHEAD_BYTES / bs))));
    this.requestBlocks = Math.max(1, Math.floor((opts.maxRequestBytes ?? REQUEST_BYTES) / bs));
    // One full window and one request in flight over all readers together: twice that let the
    // range requests of a few readers hold 48 MiB at once, the spikes of a soak's peak RSS.
    this.maxPrefetchBytes = (this.readAheadBlocks + this.requestBlocks) * bs;
    this.maxStreams = Math.max(0, Math.floor(opts.maxStreams ?? 4));
    this.wholeFileBytes = Math.min(opts.wholeFileBytes ?? MiB, this.requestBlocks * bs);
    this.streamIdleMs = Math.max(1, opts.streamIdleMs ?? 10_000);
    this.streamStallMs = Math.max(1, opts.streamStallMs ?? 60_000);
    this.noAnswerMs = Math.max(0, opts.noAnswerMs ?? NO_ANSWER_MEMORY_MS);
    this.streamSlabBlocks = Math.max(1, Math.floor(STREAM_SLAB_BYTES / bs));
    this.maxStreamBlocks = Math.max(1, Math.floor(MAX_STREAM_BYTES / bs));
    this.log = opts.logger;
    const request = this.requestBlocks * bs;
    const streamSlab = this.streamSlabBlocks * bs;
    // room for a window fetched ahead plus the blocks being read, and the slab a stream is filling
    // (memory counts whole slabs: a window spans one more than it fills)
    cache.memory.ensureCapacity((this.readAheadBlocks + this.requestBlocks) * bs + streamSlab);
    // Doubling sizes: a request takes at most twice the memory it needs (the memory blocks count
    // whole slabs), and a freed slab of any size can serve the next request of its size.
    // From 4 KiB: a small file fetched whole takes a slab of its size, not a block's (a 4 KiB file
    // held 256 KiB, and the files fetched ahead of a few readers pushed each other out of memory).
    const sizes = new Set([bs, streamSlab, request]);
    for (let size = SMALLEST_SLAB_BYTES; size < request; size *= 2) sizes.add(size);
    cache.slabs = new SlabPool([...sizes].sort((a, b) => a - b), Math.max(POOL_KEEP_BYTES, 2 * streamSlab));
  }

  /** Streams open now (for tests and status). */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Open a file for reading; its cached blocks stay pinned until the session is closed. */
  open(file: RemoteFile): ReadSession {
    return new ReadAheadSession(this, this.cache, this.cache.acquire(file));
  }

  /**
   * Put the bytes of a small file this mount just uploaded into the cache as that version, so a
   * program reading back what it wrote (git does, all the time) asks Girder for nothing. `read`
   * gives the bytes (the local copy they were uploaded from). Best effort: a failure caches nothing.
   */
  async seed(file: RemoteFile, read: (into: Buffer, length: number, position: number) => Promise<number>): Promise<void> {
    if (file.size === 0 || file.size > this.wholeFileBytes) return;
    const vf = this.cache.acquire(file);
    const slab = this.cache.slabs.take(file.size);
    try {
      const data = slab.buf.subarray(0, file.size);
      for (let pos = 0; pos < file.size; ) {
        const n = await read(data.subarray(pos), file.size - pos, pos);
        if (n <= 0) return;
        pos += n;
      }
      this.cache.store(vf, 0, data, slab);
    } catch (err) {
      slab.discard();
      this.log.debug({ fileId: file.id, err: String(err) }, 'could not cache the uploaded bytes');
    } finally {
      slab.release();
      this.cache.release(vf);
    }
  }

  async prefetch(file: RemoteFile): Promise<void> {
    if (file.size === 0 || file.size > this.wholeFileBytes) return;
    const vf = this.cache.acquire(file);
    try {
      this.fetchMissing(vf, 0, vf.blockCount, this.requestBlocks);
      const landing: Array<Promise<unknown>> = [];
      for (let b = 0; b < vf.blockCount; b++) {
        const pending = vf.pendingBlock(b);
        if (pending !== undefined) landing.push(pending.promise);
      }
      await Promise.allSettled(landing);
    } finally {
      this.cache.release(vf);
    }
  }

  /** Whether bytes of some version of the file may be cached here. */
  holds(fileId: string): boolean {
    return this.cache.holds(fileId);
  }

  /** Drop every cached version of a file (a local write replaced it). */
  invalidate(fileId: string): void {
    this.cache.dropFile(fileId);
  }

  removed(fileId: string): void {
    this.cache.dropFileWhenUnread(fileId);
  }

  // ---- used by sessions ----

  /** Block is in memory, on disk, or on its way. */
  available(vf: VersionFile, idx: number): boolean {
    return vf.pendingBlock(idx) !== undefined || vf.isOnDisk(idx) || this.cache.memory.has(vf.memoryKey(idx));
  }

  /** Read-ahead may add requests (bounds the memory of all sessions' windows together). */
  get canPrefetch(): boolean {
    return this.inflightBytes < this.maxPrefetchBytes;
  }

  /** Fetch the blocks of [from, to) that are not available, in runs of at most `maxRun` blocks. */
  fetchMissing(vf: VersionFile, from: number, to: number, maxRun: number): void {
    if (this.recentNoAnswer(vf) !== undefined) return;
    let runStart = -1;
    for (let b = from; b < to; b++) {
      if (this.available(vf, b)) {
        if (runStart >= 0) this.fetch(vf, runStart, b);
        runStart = -1;
        continue;
      }
      if (runStart < 0) runStart = b;
      if (b + 1 - runStart >= maxRun) {
        this.fetch(vf, runStart, b + 1);
        runStart = -1;
      }
    }
    if (runStart >= 0) this.fetch(vf, runStart, to);
  }

  /**
   * A stream of the first run of missing blocks from `from` (that run starting before `limit`), to
   * serve a sequential reader's read-ahead; null when none is missing there or enough streams are
   * open.
   */
  openStream(vf: VersionFile, from: number, limit: number): BlockStream | null {
    if (this.streams.size >= this.maxStreams || this.recentNoAnswer(vf) !== undefined) return null;
    let first = from;
    while (first < limit && this.available(vf, first)) first++;
    if (first >= limit) return null;
    const stop = Math.min(vf.blockCount, first + this.maxStreamBlocks);
    let end = first + 1;
    while (end < stop && !this.available(vf, end)) end++;
    const offset = first * vf.blockSize;
    const length = Math.min(vf.size, end * vf.blockSize) - offset;
    const rs = this.store.streamRange({ id: vf.fileId, size: vf.size, version: vf.key }, offset, length);
    const stream = new BlockStream(this, vf, rs, first, end, this.streamSlabBlocks, this.streamIdleMs, this.streamStallMs);
    this.streams.add(stream);
    return stream;
  }

  streamEnded(stream: BlockStream): void {
    this.streams.delete(stream);
  }

  /**
   * Start loading the disk blocks after `idx` into memory before a sequential reader gets there
   * (several at once: a cache file that is not in the page cache reads faster with a deeper queue).
   */
  preload(vf: VersionFile, idx: number): void {
    const end = Math.min(vf.blockCount, idx + Math.max(1, Math.min(this.readAheadBlocks, Math.ceil(PRELOAD_BYTES / vf.blockSize))));
    for (let b = idx; b < end; b++) {
      if (vf.pendingBlock(b) !== undefined || !vf.isOnDisk(b) || this.cache.memory.has(vf.memoryKey(b))) continue;
      this.loadFromDisk(vf, b);
    }
  }

  /** copyBlock's copy from memory, done at once; undefined when the block is not in memory. */
  copyBlockNow(vf: VersionFile, idx: number, into: Buffer, intoOffset: number, blockOffset: number, length: number, wholeBlock: boolean): number | undefined {
    const key = vf.memoryKey(idx);
    const mem = wholeBlock ? this.cache.memory.peek(key) : this.cache.memory.get(key);
    if (mem === undefined) return undefined;
    this.cache.touch(vf, idx);
    return copyFrom(mem, into, intoOffset, blockOffset, length);
  }

  /**
   * Copy `length` bytes at `blockOffset` of block `idx` into `into`. Resolves with the bytes
   * copied (fewer only when the store returned a short file). `wholeBlock`: a disk block is loaded
   * whole into memory (sequential reads) rather than just the bytes asked for.
   */
  async copyBlock(
    vf: VersionFile, idx: number, into: Buffer, intoOffset: number, blockOffset: number, length: number,
    wholeBlock: boolean, progress: ReadProgress,
  ): Promise<number> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const now = this.copyBlockNow(vf, idx, into, intoOffset, blockOffset, length, wholeBlock);
      if (now !== undefined) return now;
      const pending = vf.pendingBlock(idx);
      if (pending !== undefined) {
        if (pending.fromStore) progress.waited = true;
        let buf: Buffer | null;
        try {
          buf = await pending.promise;
        } catch (err) {
          if (isNoAnswer(err)) this.noAnswer.set(vf, { err, until: Date.now() + this.noAnswerMs });
          throw err;
        }
        if (buf !== null) return copyFrom(buf, into, intoOffset, blockOffset, length);
        continue; // the disk copy was bad and is dropped: fetch it
      }
      if (vf.isOnDisk(idx)) {
        if (wholeBlock) this.loadFromDisk(vf, idx);
        else if (await this.cache.readFromDisk(vf, idx, into, intoOffset, blockOffset, length)) return length;
        continue;
      }
      const silent = this.recentNoAnswer(vf);
      if (silent !== undefined) throw silent;
      this.fetch(vf, idx, idx + 1);
    }
    throw new FsError('EIO', `block ${idx} of file ${vf.fileId} could not be read`);
  }

  /** The error of the file's last fetch that got no answer in time, if that was recent (NO_ANSWER_MEMORY_MS). */
  private recentNoAnswer(vf: VersionFile): Error | undefined {
    const seen = this.noAnswer.get(vf);
    if (seen === undefined) return undefined;
    if (Date.now() < seen.until) return seen.err;
    this.noAnswer.delete(vf);
    return undefined;
  }

  /** One range request for blocks [first, end), shared by every reader of those blocks. */
  private fetch(vf: VersionFile, first: number, end: number): void {
    const bs = vf.blockSize;
    const offset = first * bs;
    const length = Math.min(vf.size, end * bs) - offset;
    if (length <= 0) return;
    const slab = this.cache.slabs.take(length);
    const buf = slab.buf.subarray(0, length);
    this.inflightBytes += length;
    // Each block is handed to its readers as soon as its bytes have landed, not when the whole
    // request ends: a sequential reader follows the response as it streams in.
    const landed: Array<(buf: Buffer) => void> = [];
    const early = Array.from({ length: end - first }, () => new Promise<Buffer>((resolve) => landed.push(resolve)));
    let nextLanded = 0;
    const onProgress = (filled: number): void => {
      for (; nextLanded < landed.length; nextLanded++) {
        const start = nextLanded * bs;
        const stop = start + vf.blockLength(first + nextLanded);
        if (filled < stop) break;
        (landed[nextLanded] as (buf: Buffer) => void)(buf.subarray(start, stop));
      }
    };
    const done = this.readRange(vf, offset, length, buf, onProgress);
    const entries: PendingBlock[] = early.map((landedBlock, i) => {
      const start = i * bs;
      const stop = start + vf.blockLength(first + i);
      const whole = done.then((n) => buf.subarray(start, Math.max(start, Math.min(n, stop))));
      const promise = Promise.race([landedBlock, whole]);
      promise.catch(noop); // a read-ahead nobody waits for may fail quietly
      const entry: PendingBlock = { promise, fromStore: true };
      vf.claim(first + i, entry);
      return entry;
    });
    const forget = (): void => {
      this.inflightBytes -= length;
      entries.forEach((entry, i) => vf.unclaim(first + i, entry));
    };
    done.then(
      (n) => {
        forget();
        this.cache.recordFetched(n);
        if (n < length) {
          this.log.warn({ fileId: vf.fileId, offset, length, got: n }, 'store returned fewer bytes than the file size says; not caching them');
        }
        // A version dropped meanwhile is never cached again: its waiting readers got the bytes.
        for (let b = first; b < end && !vf.dead; b++) {
          const start = (b - first) * bs;
          const block = buf.subarray(start, start + vf.blockLength(b));
          if (n < start + block.length) break;
          this.cache.memory.set(vf.memoryKey(b), block, slab);
        }
        if (n === length) this.cache.store(vf, first, buf, slab);
        slab.release();
        this.cache.settle(vf);
      },
      (err: unknown) => {
        forget();
        slab.discard();
        slab.release();
        this.cache.settle(vf);
        this.log.debug({ fileId: vf.fileId, offset, length, err: String(err) }, 'range request failed');
      },
    );
  }

  private async readRange(vf: VersionFile, offset: number, length: number, into: Buffer, onProgress: (filled: number) => void): Promise<number> {
    return this.store.readRange({ id: vf.fileId, size: vf.size, version: vf.key }, offset, length, into, 0, onProgress);
  }

  /** Load a whole disk block into memory, shared by concurrent readers. */
  private loadFromDisk(vf: VersionFile, idx: number): void {
    const len = vf.blockLength(idx);
    const slab = this.cache.slabs.take(len);
    const buf = slab.buf.subarray(0, len);
    const promise = this.cache.readFromDisk(vf, idx, buf, 0, 0, len).then((ok) => (ok ? buf : null));
    const entry: PendingBlock = { promise, fromStore: false };
    vf.claim(idx, entry);
    void promise.then((got) => {
      vf.unclaim(idx, entry);
      if (got !== null && !vf.dead) this.cache.memory.set(vf.memoryKey(idx), got, slab);
      slab.release();
    });
  }
}

function copyFrom(block: Buffer, into: Buffer, intoOffset: number, blockOffset: number, length: number): number {
  const n = Math.max(0, Math.min(length, block.length - blockOffset));
  if (n > 0) block.copy(into, intoOffset, blockOffset, blockOffset + n);
  return n;
}

function noop(): void {}

/** The server did not answer in time: a request's own timeout, or a stream that stalled. */
function isNoAnswer(err: unknown): err is Error {
  return kindOf(err) === 'timeout' || err instanceof StreamStalledError;
}
