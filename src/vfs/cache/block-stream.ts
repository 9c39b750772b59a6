import { FsError } from '../../errors.js';
import type { RangeStream } from '../../girder/store.js';
import type { Logger } from '../../log.js';
import type { BlockCache } from './block-cache.js';
import type { Slab } from './slab-pool.js';
import type { PendingBlock, VersionFile } from './version-file.js';


/** A stream that landed no byte for its stall bound: the server did not answer in time (EIO). */
export class StreamStalledError extends FsError {
  constructor(message: string) {
    super('EIO', message);
  }
}

/** What a stream needs of its CachedReader. */
export interface BlockStreamHost {
  readonly cache: BlockCache;
  readonly log: Logger;
  /** Block is in memory, on disk, or on its way. */
  available(vf: VersionFile, idx: number): boolean;
  /** The stream is over (finished, closed or failed): its connection is no longer held. */
  streamEnded(stream: BlockStream): void;
}

/** Consecutive blocks filled in one slab and written to disk together. */
interface Batch {
  readonly slab: Slab;
  readonly first: number;
  /** Blocks claimed into the batch. */
  count: number;
  /** Blocks landed (they land in order). */
  landed: number;
  /** Bytes of the landed blocks. */
  bytes: number;
  /** No more blocks will be claimed into it. */
  sealed: boolean;
  /** A short block landed: keep nothing of this batch on disk. */
  cacheable: boolean;
}

/** A block this stream will deliver to the readers waiting on its pending entry. */
interface Claim {
  readonly entry: PendingBlock;
  readonly resolve: (buf: Buffer | null) => void;
  readonly reject: (err: unknown) => void;
}

const noop = (): void => {};

/**
 * The read-ahead of one sequential reader as one streamed read of the store: blocks up to the end
 * of the reader's window are claimed (pending, so other readers wait for them rather than fetch
 * them), filled in order as the bytes arrive, handed to their readers, kept in memory and written
 * to disk like fetched blocks. Nothing beyond the window is asked for, so a reader that stops
 * leaves the connection paused (TCP backpressure); it is closed on a seek, on close, and after
 * `idleMs` without reads. Claimed blocks that never land are released (readers then fetch them)
 * or, when the store failed, fail with its error. A watchdog fails them (EIO) when no byte lands
 * for `stallMs` while reads are queued on the store: a reader gets an error, never a hang.
 */
export class BlockStream {
  /** Blocks before this are claimed. */
  private claimEnd: number;
  private state: 'active' | 'draining' | 'ended' = 'active';
  private batch: Batch | null = null;
  /** Batches not yet written to disk. */
  private readonly unflushed = new Set<Batch>();
  private readonly claims = new Map<number, Claim>();
  /** Reads queued on the store's stream and not settled. */
  private outstanding = 0;
  private lastUsed = Date.now();
  /** When the last block landed (or reads were queued after none were). */
  private lastLanded = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly host: BlockStreamHost,
    private readonly vf: VersionFile,
    private readonly stream: RangeStream,
    /** First block of the stream. */
    readonly first: number,
    /** Block after the last one of the stream (it may end sooner: see advance()). */
    private stop: number,
    private readonly batchBlocks: number,
    idleMs: number,
    stallMs: number,
  ) {
    this.claimEnd = first;
    this.timer = setInterval(() => {
      const now = Date.now();
      if (this.outstanding > 0 && now - this.lastLanded >= stallMs) {
        // The store owes bytes and sends none (while draining, no reader's advance() closes the
        // stream either): fail the claims rather than leave their readers waiting for ever.
        // The reads waiting on it fail, and the operations they serve log why, with their path.
        this.host.log.debug({ fileId: this.vf.fileId, stallMs }, 'streamed read stalled; failing the blocks waiting on it');
        this.terminate(new StreamStalledError(`streamed read of file ${this.vf.fileId}: no data for ${stallMs / 1000} s`));
      } else if (this.state === 'active' && now - this.lastUsed >= idleMs) {
        this.close();
      }
    }, Math.max(1, Math.floor(Math.min(idleMs, stallMs) / 2)));
    this.timer.unref();
  }

  /** Still claiming blocks as its reader advances. */
  get active(): boolean {
    return this.state === 'active';
  }

  /** Blocks before this were claimed (delivered, under way, or released). */
  get claimedUntil(): number {
    return this.claimEnd;
  }

  /** Block after the last one the stream delivers. */
  get end(): number {
    return this.stop;
  }

  /**
   * Let the stream run up to block `target` (exclusive): claim the blocks before it. The stream
   * ends before the first block that became available meanwhile (fetched or streamed for another
   * reader, or loaded from disk): it would only download it again. Its reader's session opens a
   * new stream after that run, as after a cached one.
   */
  advance(target: number): void {
    if (this.state !== 'active') return;
    this.lastUsed = Date.now();
    const upTo = Math.min(target, this.stop);
    while (this.claimEnd < upTo) {
      if (this.host.available(this.vf, this.claimEnd)) {
        this.stop = this.claimEnd;
        break;
      }
      this.claim(this.claimEnd++);
    }
    if (this.claimEnd >= this.stop) {
      this.state = 'draining';
      if (this.batch !== null) this.seal(this.batch);
      if (this.outstanding === 0) this.finish();
    }
  }

  /** Stop now (a seek, a close, idle): blocks claimed and not landed are released to be fetched. */
  close(): void {
    this.terminate(null);
  }

  private claim(idx: number): void {
    const vf = this.vf;
    const bs = vf.blockSize;
    let batch = this.batch;
    if (batch === null || batch.count >= this.batchBlocks) {
      if (batch !== null) this.seal(batch);
      batch = {
        slab: this.host.cache.slabs.take(this.batchBlocks * bs), first: idx, count: 0, landed: 0, bytes: 0, sealed: false, cacheable: true,
      };
      this.batch = batch;
      this.unflushed.add(batch);
    }
    const at = batch.count * bs;
    batch.count++;
    const buf = batch.slab.buf.subarray(at, at + vf.blockLength(idx));
    // advance() claims no block that is available already
    let resolve!: (buf: Buffer | null) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<Buffer | null>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(noop); // a read-ahead nobody waits for may fail quietly
    const entry: PendingBlock = { promise, fromStore: true };
    vf.claim(idx, entry);
    this.claims.set(idx, { entry, resolve, reject });
    if (this.outstanding++ === 0) this.lastLanded = Date.now(); // the stall clock starts now
    const owner = batch;
    this.stream.read(buf).then(
      (n) => this.landed(owner, idx, buf, n),
      (err: unknown) => this.failed(err),
    );
  }

  private landed(batch: Batch, idx: number, buf: Buffer, n: number): void {
    this.outstanding--;
    this.lastLanded = Date.now();
    if (this.state === 'ended') return;
    const vf = this.vf;
    const cache = this.host.cache;
    cache.recordFetched(n);
    const whole = n === buf.length;
    if (whole) {
      batch.bytes += n;
      if (!vf.dead) cache.memory.set(vf.memoryKey(idx), buf, batch.slab);
    } else if (batch.cacheable) {
      batch.cacheable = false;
      this.host.log.warn({ fileId: vf.fileId, block: idx, got: n }, 'store returned fewer bytes than the file size says; not caching them');
    }
    batch.landed++;
    const claim = this.claims.get(idx);
    if (claim !== undefined) {
      this.claims.delete(idx);
      vf.unclaim(idx, claim.entry);
      claim.resolve(whole ? buf : buf.subarray(0, n));
    }
    if (batch.sealed && batch.landed === batch.count) this.flush(batch);
    if (this.state === 'draining' && this.outstanding === 0) this.finish();
  }

  private failed(err: unknown): void {
    this.outstanding--;
    if (this.state === 'ended') return;
    this.host.log.debug({ fileId: this.vf.fileId, err: String(err) }, 'streamed read failed');
    this.terminate(err);
  }

  private seal(batch: Batch): void {
    batch.sealed = true;
    if (batch === this.batch) this.batch = null;
    if (batch.landed === batch.count) this.flush(batch);
  }

  /** Write the landed blocks of a batch to disk and let go of its slab. */
  private flush(batch: Batch): void {
    if (!this.unflushed.delete(batch)) return;
    const vf = this.vf;
    if (batch.cacheable && batch.bytes > 0 && !vf.dead) {
      this.host.cache.store(vf, batch.first, batch.slab.buf.subarray(0, batch.bytes), batch.slab);
    }
    batch.slab.release();
  }

  /** Every block landed. */
  private finish(): void {
    this.state = 'ended';
    clearInterval(this.timer);
    this.stream.close();
    for (const batch of [...this.unflushed]) this.flush(batch);
    this.host.cache.settle(this.vf);
    this.host.streamEnded(this);
  }

  /** Stop before the end: release the claims (err: fail them), keep what landed. */
  private terminate(err: unknown): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    clearInterval(this.timer);
    this.stream.close();
    const vf = this.vf;
    for (const [idx, claim] of this.claims) {
      vf.unclaim(idx, claim.entry);
      if (err === null) claim.resolve(null);
      else claim.reject(err);
    }
    this.claims.clear();
    this.batch = null;
    for (const batch of [...this.unflushed]) {
      // Keep the blocks that landed; the slab is not reused (nothing may write into it any more, but be sure).
      batch.slab.discard();
      batch.count = batch.landed;
      this.flush(batch);
    }
    this.host.cache.settle(vf);
    this.host.streamEnded(this);
  }
}
