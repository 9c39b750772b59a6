import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { openUncached } from '../../uncached-io.js';
import { writeAll, type DirectBlocks } from './direct-blocks.js';
import { punchHole } from './hole-punch.js';

/** One cached block on disk; its place in the cache's LRU is the object itself. */
export interface BlockEntry {
  readonly vf: VersionFile;
  readonly idx: number;
  readonly bytes: number;
}

/** A store fetch or a disk load of one block under way; null when the disk copy turned out bad. */
export interface PendingBlock {
  readonly promise: Promise<Buffer | null>;
  readonly fromStore: boolean;
}

interface SharedReader {
  readonly handle: Promise<FileHandle>;
  users: number;
  detached: boolean;
}

/** Hole punching failed (no fallocate, or a filesystem without it). */
export class PunchError extends Error {
  override readonly name = 'PunchError';
}

const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;

/**
 * One version of one remote file: a sparse file holding its fixed-size blocks at their own
 * offsets, and what is known about them. Mutations of the disk file (write, punch, truncate,
 * unlink) run one after another on `enqueue`; reads share one descriptor while the file is open.
 */
export class VersionFile {
  // A block's life: claimed (a fetch or disk load under way: `pending`), written (`writing`),
  // on disk (`present`), evicted (`toFree` until its space is given back). Only the verbs below
  // change these; the cache keeps its own accounting (LRU, bytes) from what they return.
  /** Blocks on disk, by index. */
  private readonly present = new Map<number, BlockEntry>();
  /** Blocks being written (their bytes are reserved in the cache). */
  private readonly writing = new Set<number>();
  /** Evicted blocks whose space is not freed yet: index -> eviction generation. */
  private readonly toFree = new Map<number, number>();
  /** Fetches and disk loads under way, shared by every reader. */
  private readonly pending = new Map<number, PendingBlock>();
  /** Open read sessions; a pinned file's blocks are never evicted. */
  private pins = 0;
  /** Dropped (version changed, invalidated): never cached again, file unlinked. */
  private isDead = false;
  /** A write was attempted since the file was last unlinked. */
  private fileMayExist = false;
  readonly path: string;
  readonly blockCount: number;
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private reader: SharedReader | null = null;
  /** Descriptor for writes, kept while mutations are queued. */
  private writer: Promise<FileHandle> | null = null;
  /** The same file opened with O_DIRECT, when `direct` is given and the kernel allows. */
  private directWriter: Promise<FileHandle | undefined> | null = null;

  constructor(
    readonly num: number,
    /** The blocks directory. */
    dir: string,
    readonly fileId: string,
    readonly size: number,
    readonly key: string,
    readonly blockSize: number,
    /** Called when the last queued mutation is done. */
    private readonly onIdle: () => void,
    /** Writes blocks around the page cache (see direct-blocks.ts). */
    private readonly direct?: DirectBlocks,
  ) {
    this.path = path.join(dir, this.name);
    this.blockCount = Math.ceil(size / blockSize);
  }

  // ---- pins ----

  /** A read session opened the file: its blocks stay until unpin(). */
  pin(): void {
    this.pins++;
  }

  /** A read session closed. True when it was the last one. */
  unpin(): boolean {
    if (this.pins <= 0) return false;
    this.pins--;
    return this.pins === 0;
  }

  get pinned(): boolean {
    return this.pins > 0;
  }

  // ---- claims: fetches and disk loads under way ----

  /** Readers of block `idx` wait for `entry` rather than fetch it themselves. */
  claim(idx: number, entry: PendingBlock): void {
    this.pending.set(idx, entry);
  }

  /** The fetch or load of `entry` is over (a newer claim of the block stays). */
  unclaim(idx: number, entry: PendingBlock): void {
    if (this.pending.get(idx) === entry) this.pending.delete(idx);
  }

  pendingBlock(idx: number): PendingBlock | undefined {
    return this.pending.get(idx);
  }

  // ---- blocks on disk ----

  /** Block `idx` is being written (its space is reserved); an eviction of it not freed yet is void. */
  startWrite(idx: number): void {
    this.writing.add(idx);
    this.toFree.delete(idx);
  }

  endWrite(idx: number): void {
    this.writing.delete(idx);
  }

  isWriting(idx: number): boolean {
    return this.writing.has(idx);
  }

  /** Block `idx` (of `bytes` bytes) is on disk: its new entry, or undefined when it was already. */
  land(idx: number, bytes: number): BlockEntry | undefined {
    if (this.present.has(idx)) return undefined;
    const e: BlockEntry = { vf: this, idx, bytes };
    this.present.set(idx, e);
    return e;
  }

  isOnDisk(idx: number): boolean {
    return this.present.has(idx);
  }

  onDisk(idx: number): BlockEntry | undefined {
    return this.present.get(idx);
  }

  /** Indexes of the blocks on disk. */
  blocksOnDisk(): number[] {
    return [...this.present.keys()];
  }

  get holdsBlocks(): boolean {
    return this.present.size > 0;
  }

  /** Evict block `idx` in eviction generation `gen`: its entry, or undefined when it was not on disk. */
  evict(idx: number, gen: number): BlockEntry | undefined {
    const e = this.present.get(idx);
    if (e === undefined) return undefined;
    this.present.delete(idx);
    this.toFree.set(idx, gen);
    return e;
  }

  /** Take the evicted blocks of generation `gen` or older, whose space is to be freed now. */
  takeEvicted(gen: number): number[] {
    const idxs: number[] = [];
    for (const [idx, g] of this.toFree) {
      if (g <= gen) idxs.push(idx);
    }
    for (const idx of idxs) this.toFree.delete(idx);
    return idxs;
  }

  /** Evicted blocks wait to have their space freed. */
  get hasEvicted(): boolean {
    return this.toFree.size > 0;
  }

  // ---- the version as a whole ----

  get dead(): boolean {
    return this.isDead;
  }

  /**
   * Drop the version: it is never cached again; its claims, blocks and evictions are forgotten.
   * Returns the entries of the blocks that were on disk.
   */
  drop(): BlockEntry[] {
    this.isDead = true;
    const entries = [...this.present.values()];
    this.present.clear();
    this.toFree.clear();
    this.pending.clear();
    return entries;
  }

  /** Holds nothing and is used by no one: the cache may forget it. */
  get unused(): boolean {
    return this.pins === 0 && this.present.size === 0 && this.writing.size === 0 && this.toFree.size === 0
      && this.pending.size === 0 && !this.busy;
  }

  /** The file may be on disk (a write was attempted, or it was found at start, since its last unlink). */
  get mayExist(): boolean {
    return this.fileMayExist;
  }

  /** Found on disk at start. */
  foundOnDisk(): void {
    this.fileMayExist = true;
  }

  /** Name of the file in the blocks directory. */
  get name(): string {
    return `v${this.num}`;
  }

  /** Prefix of this version's keys in the memory blocks. */
  get memoryPrefix(): string {
    return `${this.num}:`;
  }

  memoryKey(idx: number): string {
    return `${this.num}:${idx}`;
  }

  blockLength(idx: number): number {
    return Math.max(0, Math.min(this.blockSize, this.size - idx * this.blockSize));
  }

  /** Mutations queued or running. */
  get busy(): boolean {
    return this.queued > 0;
  }

  /** Run `op` after every mutation queued before it. */
  enqueue<T>(op: () => Promise<T>): Promise<T> {
    this.queued++;
    const run = this.chain.then(op);
    this.chain = run.then(noop, noop).then(async () => {
      this.queued--;
      if (this.queued > 0) return;
      await this.closeWriter();
      if (this.queued === 0) this.onIdle();
    });
    return run;
  }

  /** Resolves when every mutation queued so far is done. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Write consecutive blocks from block `idx` on (only inside `enqueue`). */
  async writeBlocks(idx: number, data: Buffer): Promise<void> {
    this.fileMayExist = true;
    if (this.writer === null) {
      const writer = fsp.open(this.path, WRITE_FLAGS, 0o600);
      this.writer = writer;
      writer.catch(noop);
      if (this.direct !== undefined) {
        this.directWriter = writer.then(() => openUncached(this.path, constants.O_WRONLY | constants.O_NOFOLLOW), () => undefined);
        this.directWriter.catch(noop);
      }
    }
    try {
      const fh = await this.writer;
      const direct = this.directWriter === null ? undefined : await this.directWriter;
      if (direct !== undefined && this.direct !== undefined) await this.direct.write(direct, fh, data, idx * this.blockSize);
      else await writeAll(fh, data, idx * this.blockSize);
    } catch (err) {
      await this.closeWriter();
      throw err;
    }
  }

  private async closeWriter(): Promise<void> {
    const w = this.writer;
    const d = this.directWriter;
    this.writer = null;
    this.directWriter = null;
    if (w !== null) await w.then((fh) => fh.close()).catch(noop);
    if (d !== null) await d.then((fh) => fh?.close()).catch(noop);
  }

  /** Read from the file through the shared descriptor. Resolves with the bytes read. */
  async readAt(into: Buffer, intoOffset: number, length: number, position: number): Promise<number> {
    let r = this.reader;
    if (r === null) {
      const handle = fsp.open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      handle.catch(noop);
      r = this.reader = { handle, users: 0, detached: false };
    }
    r.users++;
    try {
      const fh = await r.handle;
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(into, intoOffset + done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done;
    } catch (err) {
      this.detachReader();
      throw err;
    } finally {
      r.users--;
      if (r.detached && r.users === 0) closeReader(r);
    }
  }

  /** Stop reusing the shared descriptor (closed once its last read ends). */
  detachReader(): void {
    const r = this.reader;
    if (r === null) return;
    this.reader = null;
    r.detached = true;
    if (r.users === 0) closeReader(r);
  }

  /** Flush written data to the device, so an index naming these blocks never outlives them. */
  async sync(): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return; // unlinked meanwhile: nothing to keep
    }
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  /** Only inside `enqueue`. */
  async truncate(length: number): Promise<void> {
    await fsp.truncate(this.path, length);
  }

  /**
   * Give back the disk space of evicted blocks (only inside `enqueue`): unlink the file when no
   * block is left, cut a tail off, punch holes for the rest. Throws PunchError when holes cannot
   * be punched here.
   */
  async freeSpace(idxs: readonly number[]): Promise<void> {
    if (this.present.size === 0) {
      await this.unlink(); // writes queued after this recreate the file
      return;
    }
    const bs = this.blockSize;
    const keepEnd = Math.min(this.size, (Math.max(...this.present.keys()) + 1) * bs);
    if (idxs.some((idx) => idx * bs >= keepEnd)) await this.truncate(keepEnd);
    for (const [first, end] of runs(idxs.filter((idx) => idx * bs < keepEnd))) {
      try {
        await punchHole(this.path, first * bs, (end - first) * bs);
      } catch (err) {
        throw new PunchError('cannot punch a hole', { cause: err });
      }
    }
  }

  /** Remove the file (only inside `enqueue`). */
  async unlink(): Promise<void> {
    await this.closeWriter();
    this.detachReader();
    this.fileMayExist = false;
    await fsp.rm(this.path, { force: true });
  }
}

/** Block indexes as sorted [first, end) runs of consecutive blocks. */
function runs(idxs: readonly number[]): Array<[number, number]> {
  const sorted = [...idxs].sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  for (const idx of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === idx) last[1] = idx + 1;
    else out.push([idx, idx + 1]);
  }
  return out;
}

function closeReader(r: SharedReader): void {
  r.handle.then((fh) => fh.close()).catch(noop);
}

function noop(): void {}
