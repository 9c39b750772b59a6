import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { RemoteFile } from '../ports.js';
import { BlockAdmission } from './block-admission.js';
import { BlockLru } from './block-lru.js';
import { ReadCounters, type CacheStats } from './cache-stats.js';
import { DirectBlocks } from './direct-blocks.js';
import { EvictedSpace } from './evicted-space.js';
import { restoreIndex } from './index-restore.js';
import { IndexSaver } from './index-saver.js';
import { MemoryBlocks } from './memory-blocks.js';
import { SlabPool, type Slab } from './slab-pool.js';
import type { VersionFile } from './version-file.js';
import { VersionRegistry } from './version-registry.js';
import { errCode, WarnOnce } from './warn-once.js';

export interface BlockCacheOptions {
  /** Private directory of this cache (made mode 0700); one cache per directory. */
  dir: string;
  /** Byte cap of the blocks on disk. */
  maxBytes: number;
  /** Bytes per block (default 256 KiB); a different size than the index's empties the cache. */
  blockSize?: number;
  logger: Logger;
  /** Bytes of recent blocks kept in memory (default 16 MiB; a CachedReader raises it to fit its read-ahead). */
  memoryBytes?: number;
  /** How often the index is saved when it changed (default 30 s). */
  saveIntervalMs?: number;
}

const MiB = 1024 * 1024;
/** Small enough that a random read costs little more than its own bytes; sequential reads fetch many per request. */
export const DEFAULT_BLOCK_SIZE = 256 * 1024;
const INDEX_FILE = 'index.json';
const BLOCKS_DIR = 'blocks';

/**
 * The on-disk block cache: one sparse file per file version holding fixed-size blocks, a byte cap
 * with least-recently-used eviction that skips pinned (open) versions (block-lru.ts), and an index
 * that survives restarts (index-saver.ts, index-restore.ts). Evicted space is freed only after an
 * index without those blocks is on disk (evicted-space.ts). Fetched blocks are written where there
 * is room (block-admission.ts). This class holds them together: the versions' life (acquire,
 * release, drop), reads of disk blocks, and open/close.
 */
export class BlockCache {
  readonly memory: MemoryBlocks;
  /** Buffers for range requests and disk loads (see CachedReader). */
  slabs: SlabPool;
  private readonly log: Logger;
  private readonly warn: WarnOnce;
  private readonly versions: VersionRegistry;
  private readonly lru: BlockLru;
  private readonly space: EvictedSpace;
  private readonly index: IndexSaver;
  private readonly admission: BlockAdmission;
  private readonly counters = new ReadCounters();
  /** Versions of files gone from Girder, dropped when their last session ends. */
  private readonly goneWhileRead = new Set<VersionFile>();
  /** Unlinks of files that left `versions`. */
  private readonly leaving = new Set<Promise<void>>();
  private closed = false;
  private closing: Promise<void> | null = null;
  /** close() finished: the directory is no longer ours to write. */
  private shutDown = false;

  private constructor(
    dir: string,
    private readonly blocksDir: string,
    readonly maxBytes: number,
    readonly blockSize: number,
    memoryBytes: number,
    direct: DirectBlocks | undefined,
    log: Logger,
  ) {
    this.memory = new MemoryBlocks(memoryBytes);
    this.slabs = new SlabPool([blockSize], 4 * blockSize);
    this.log = log;
    this.warn = new WarnOnce(log);
    this.versions = new VersionRegistry(blocksDir, blockSize, (vf) => this.settle(vf), direct);
    this.lru = new BlockLru(maxBytes, blockSize);
    this.space = new EvictedSpace(this.lru, this.warn);
    this.index = new IndexSaver(path.join(dir, INDEX_FILE), blockSize, this.lru, this.space, this.versions, this.warn);
    this.admission = new BlockAdmission(blockSize, this.lru, this.index, this.warn, dir, (need) => this.makeRoom(need));
  }

  static async open(opts: BlockCacheOptions): Promise<BlockCache> {
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    if (!Number.isSafeInteger(blockSize) || blockSize < 4096 || blockSize > 1024 * MiB) {
      throw new RangeError(`block size must be an integer from 4 KiB to 1 GiB, not ${blockSize}`);
    }
    if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes < 0) {
      throw new RangeError(`cache size must be a byte count, not ${opts.maxBytes}`);
    }
    const dir = path.resolve(opts.dir);
    const blocksDir = path.join(dir, BLOCKS_DIR);
    const memoryBytes = Math.max(opts.memoryBytes ?? 16 * MiB, 4 * blockSize);
    for (const d of [dir, blocksDir]) {
      await fsp.mkdir(d, { recursive: true, mode: 0o700 });
      await fsp.chmod(d, 0o700);
    }
    const direct = await DirectBlocks.open(blocksDir);
    const cache = new BlockCache(dir, blocksDir, opts.maxBytes, blockSize, memoryBytes, direct, opts.logger);
    await cache.load();
    cache.index.saveEvery(opts.saveIntervalMs ?? 30_000);
    return cache;
  }

  stats(): CacheStats {
    return this.counters.stats(this.lru.bytes, this.maxBytes);
  }

  /** Waits for pending writes, saves the index, and stops caching. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- used by CachedReader ----

  /** The cache entry of this version of the file, pinned; other versions of the file are dropped. */
  acquire(file: RemoteFile): VersionFile {
    if (this.closed) throw new Error('block cache is closed');
    if (!Number.isSafeInteger(file.size) || file.size < 0) throw new RangeError(`bad file size ${file.size}`);
    const list = this.versions.versionsOf(file.id);
    let vf = list.find((v) => v.key === file.versionKey && v.size === file.size);
    for (const other of list) if (other !== vf) this.kill(other);
    vf ??= this.versions.makeNext(file.id, file.size, file.versionKey);
    this.versions.keepOnly(vf);
    vf.pin();
    return vf;
  }

  release(vf: VersionFile): void {
    if (vf.unpin()) {
      this.lru.unblock();
      vf.detachReader();
      if (this.goneWhileRead.delete(vf)) this.kill(vf);
      else this.settle(vf);
    }
  }

  /** Whether any version of the file has an entry here (blocks on disk, or it is open). */
  holds(fileId: string): boolean {
    return this.versions.has(fileId);
  }

  /** Drop every version of a file: cached bytes are never served again. */
  dropFile(fileId: string): void {
    if (this.closed) return;
    for (const vf of this.versions.versionsOf(fileId)) this.kill(vf);
  }

  /**
   * A file Girder no longer has (removed or replaced from here): its versions are dropped, each once
   * no session reads it (a program may read a file it has open after its removal). Otherwise they
   * would stay until their blocks are evicted, in memory too: a mount that writes and removes many
   * files (a soak: 1,750 versions in 12 minutes) grew its heap for as long as the cache had room.
   */
  dropFileWhenUnread(fileId: string): void {
    if (this.closed) return;
    for (const vf of this.versions.versionsOf(fileId)) {
      if (vf.pinned) this.goneWhileRead.add(vf);
      else this.kill(vf);
    }
  }

  /** A disk block was used: it becomes the most recently used. */
  touch(vf: VersionFile, idx: number): void {
    const e = vf.onDisk(idx);
    if (e === undefined) return;
    this.lru.touch(e);
    this.index.markChanged();
  }

  /**
   * Copy part of a block from disk. False when it is not there, or its file turned out short or
   * unreadable (the block is then dropped, to be fetched again).
   */
  async readFromDisk(vf: VersionFile, idx: number, into: Buffer, intoOffset: number, blockOffset: number, length: number): Promise<boolean> {
    if (this.closed || !vf.isOnDisk(idx)) return false;
    this.touch(vf, idx);
    let n: number;
    try {
      n = await vf.readAt(into, intoOffset, length, idx * this.blockSize + blockOffset);
    } catch (err) {
      this.warn.warn(`read:${errCode(err)}`, { err: errorMessage(err), file: vf.path }, 'cannot read a cached block; fetching it again');
      this.dropBlock(vf, idx);
      return false;
    }
    if (n < length) {
      this.warn.warn('short', { file: vf.path, block: idx }, 'cached block file is shorter than its index says; fetching it again');
      this.dropBlock(vf, idx);
      return false;
    }
    return true;
  }

  /** Keep fetched blocks on disk where there is room (see BlockAdmission.store). */
  store(vf: VersionFile, first: number, data: Buffer, slab: Slab): void {
    if (!this.closed) this.admission.store(vf, first, data, slab);
    this.settle(vf);
  }

  recordRead(hit: boolean): void {
    this.counters.recordRead(hit);
  }

  recordFetched(bytes: number): void {
    this.counters.recordFetched(bytes);
  }

  /** Forget a version that holds nothing and is used by no one. */
  settle(vf: VersionFile): void {
    if (!vf.unused) return;
    this.versions.remove(vf);
    if (vf.mayExist && !this.shutDown) this.track(vf.unlink());
  }

  // ---- eviction ----

  /** Evict unpinned blocks until `need` more bytes fit under the cap. */
  private makeRoom(need: number): boolean {
    return this.lru.makeRoom(need, (e) => {
      if (this.space.punchWorks) this.dropBlock(e.vf, e.idx);
      else for (const idx of e.vf.blocksOnDisk()) this.dropBlock(e.vf, idx);
    });
  }

  /** Take a block off the disk; its space is freed after the save that follows soon. */
  private dropBlock(vf: VersionFile, idx: number): void {
    if (this.space.evict(vf, idx)) this.index.saveSoon();
  }

  /** Drop a version: unlink its file, forget its blocks in memory and on disk. */
  private kill(vf: VersionFile): void {
    this.goneWhileRead.delete(vf);
    if (vf.dead) return;
    const entries = vf.drop();
    this.lru.unblock();
    for (const e of entries) this.lru.remove(e);
    this.memory.deletePrefix(vf.memoryPrefix);
    this.index.forget(vf);
    this.space.forget(vf);
    this.versions.remove(vf);
    this.index.markChanged();
    vf.detachReader();
    this.track(vf.enqueue(() => vf.unlink()));
  }

  private track(op: Promise<void>): void {
    const p: Promise<void> = op
      .catch((err: unknown) => this.warn.warn(`unlink:${errCode(err)}`, { err: errorMessage(err) }, 'cannot remove a cache file'))
      .finally(() => this.leaving.delete(p));
    this.leaving.add(p);
  }

  // ---- open and close ----

  /** Take over the blocks the index names; start the first save when it was out of date. */
  private async load(): Promise<void> {
    const restored = await restoreIndex(this.index.file, this.blocksDir, this.blockSize, this.log, (num, fileId, size, key) => this.versions.make(num, fileId, size, key));
    for (const e of restored.blocks) this.lru.add(e);
    this.versions.restore(restored.nextNum, restored.versions);
    if (restored.dropped > 0) this.index.markChanged();
    if (this.lru.overCap) this.makeRoom(0);
    if (this.index.changed) await this.index.save();
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.index.stopTimer();
    const all = (): VersionFile[] => this.versions.all();
    await Promise.all(all().map((vf) => vf.idle()));
    await this.index.save();
    await Promise.all(all().map((vf) => vf.idle()));
    await Promise.all([...this.leaving]);
    for (const vf of all()) vf.detachReader();
    this.memory.clear();
    this.slabs.clear();
    this.index.stop();
    this.shutDown = true;
  }
}
