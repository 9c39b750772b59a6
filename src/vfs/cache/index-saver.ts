import { promises as fsp } from 'node:fs';
import { errorMessage } from '../../errors.js';
import { eachLimit } from '../each-limit.js';
import type { BlockLru } from './block-lru.js';
import { writeIndex, type IndexData, type IndexVersion } from './cache-index.js';
import type { EvictedSpace } from './evicted-space.js';
import type { VersionFile } from './version-file.js';
import type { VersionRegistry } from './version-registry.js';
import { errCode, type WarnOnce } from './warn-once.js';

/**
 * Block files flushed at once before a save. The thread pool runs four; more only queue. Each one
 * waiting holds a descriptor and its promises: after `cat` of 10,000 small files, flushing them all
 * at once took the daemon's RSS from 150 to 200 MiB for the length of the save.
 */
export const SYNCS_AT_ONCE = 8;

/**
 * When and how the cache index is saved: every so often when it changed, soon after an eviction
 * (whose space is freed once the index without it is on disk), and at close. One save at a time;
 * the block files it names are flushed to the device before it.
 */
export class IndexSaver {
  /** Files written since their last fdatasync. */
  private readonly dirtyFiles = new Set<VersionFile>();
  private dirty = false;
  private chain: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;
  private soon = false;
  private timer: NodeJS.Timeout | undefined;
  /** The cache closed: its directory is no longer ours to write. */
  private stopped = false;

  constructor(
    /** The index file. */
    readonly file: string,
    private readonly blockSize: number,
    private readonly lru: BlockLru,
    private readonly space: EvictedSpace,
    private readonly registry: VersionRegistry,
    private readonly warn: WarnOnce,
  ) {}

  /** The index on disk no longer matches the cache. */
  get changed(): boolean {
    return this.dirty;
  }

  markChanged(): void {
    this.dirty = true;
  }

  /** Blocks of `vf` were written: the next save flushes them first. */
  written(vf: VersionFile): void {
    this.dirtyFiles.add(vf);
    this.dirty = true;
  }

  /** A dropped version: nothing of it is to be flushed. */
  forget(vf: VersionFile): void {
    this.dirtyFiles.delete(vf);
  }

  /** Save once the current turn of the event loop is done (evictions then wait for no timer). */
  saveSoon(): void {
    this.dirty = true;
    if (this.soon) return;
    this.soon = true;
    setImmediate(() => {
      this.soon = false;
      void this.save();
    });
  }

  /** Save when changed, every `ms`. */
  saveEvery(ms: number): void {
    this.timer = setInterval(() => {
      if (this.dirty) void this.save();
    }, ms);
    this.timer.unref();
  }

  stopTimer(): void {
    clearInterval(this.timer);
  }

  /** No save after this one. */
  stop(): void {
    this.stopped = true;
  }

  /** Save the index (one save at a time; requests made meanwhile share the next one). */
  save(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.queued !== null) return this.queued;
    const run = this.chain.then(() => {
      this.queued = null;
      return this.saveOnce();
    });
    this.queued = run;
    this.chain = run;
    return run;
  }

  private async saveOnce(): Promise<void> {
    const gen = this.space.nextGeneration();
    const snapshot = this.snapshot();
    const dirty = [...this.dirtyFiles];
    this.dirtyFiles.clear();
    this.dirty = false;
    try {
      await eachLimit(dirty, SYNCS_AT_ONCE, (vf) => vf.sync());
      await writeIndex(this.file, snapshot);
    } catch (err) {
      this.warn.warn(`save:${errCode(err)}`, { err: errorMessage(err) }, 'cannot save the cache index; a restart will start cold');
      for (const vf of dirty) if (!vf.dead) this.dirtyFiles.add(vf);
      this.dirty = true;
      // Without a trustworthy index on disk, freeing blocks is safe only once the old one is gone.
      try {
        await fsp.rm(this.file, { force: true });
      } catch {
        return;
      }
    }
    await this.space.freeUpTo(gen);
  }

  private snapshot(): IndexData {
    const versions: IndexVersion[] = [];
    const at = new Map<VersionFile, number>();
    const blocks: Array<readonly [number, number]> = [];
    for (const e of this.lru.entries()) {
      let i = at.get(e.vf);
      if (i === undefined) {
        i = versions.length;
        at.set(e.vf, i);
        versions.push({ file: e.vf.name, fileId: e.vf.fileId, size: e.vf.size, key: e.vf.key });
      }
      blocks.push([i, e.idx]);
    }
    return { format: 1, blockSize: this.blockSize, nextNum: this.registry.nextNum, versions, blocks };
  }
}
